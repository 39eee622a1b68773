/* A stand-in for OpenLDAP's libldap.so.2/liblber.so.2 so that Debian
 * trixie's pluto (Libreswan 5.2) loads on Debian 12, whose libldap is
 * libldap-2.5.so.0 (trixie's libldap.so.2 needs glibc 2.38). pluto uses
 * LDAP only to fetch CRLs from ldap:// URLs; every call here fails. */
#include <stddef.h>
#define FAIL_INT(name) int name() { return -1; }
#define FAIL_PTR(name) void *name() { return NULL; }
#define NOTHING(name) void name() { }
NOTHING(ber_free)
NOTHING(ldap_free_urldesc)
FAIL_INT(ldap_unbind_s)
FAIL_PTR(ldap_get_values_len)
FAIL_INT(ldap_msgfree)
FAIL_INT(ldap_url_parse)
FAIL_INT(ldap_simple_bind)
FAIL_INT(ldap_result)
NOTHING(ldap_memfree)
FAIL_PTR(ldap_init)
FAIL_PTR(ldap_first_entry)
FAIL_PTR(ldap_first_attribute)
FAIL_INT(ldap_search_st)
const char *ldap_err2string(int e) { (void)e; return "LDAP is not available (stub)"; }
FAIL_INT(ldap_result2error)
NOTHING(ldap_value_free_len)
FAIL_INT(ldap_set_option)
