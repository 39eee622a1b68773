//! A console form through the API's own decoding: no rule is written here.
//!
//! Form fields are named after the v2 parameters (`cidrBlock`,
//! `IKESet.dhGroupName`, ...). A submitted form becomes the v2 parameter
//! list, goes through the v2 decoder ([`crate::v2::Params`]) and the v2
//! adapter of the action into the same typed request and the same `ops`
//! function an API call reaches, so validation, codes and messages are the
//! API's own. The error's parameter is mapped back to the form field that
//! carried it.

use serde_json::Value;
use vpcd_store::Scope;

use crate::api::ApiState;
use crate::error::{ApiError, ErrorCode};
use crate::v2::{self, Action, Params};

/// Fields of the console's own, never sent to an action.
const CONSOLE_FIELDS: &[&str] = &["csrf", "region"];

/// Form fields holding a list, one value per line (or separated by commas
/// or blanks): they become the v2 array `name.0`, `name.1`, ...
const LIST_FIELDS: &[&str] = &["userGwCidrBlock"];

/// A decoded form body, in field order.
pub(crate) struct Form {
    pub(crate) fields: Vec<(String, String)>,
}

impl Form {
    /// Strict decoding (the same as the API endpoints'): a field that is not
    /// UTF-8 after percent-decoding is refused.
    pub(crate) fn decode(body: &[u8]) -> Result<Form, ApiError> {
        vpcd_auth::form::decode(body)
            .map(|fields| Form { fields })
            .map_err(|_| ApiError::invalid("form", "a field is not valid UTF-8"))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The v2 parameters the form stands for: the console's own fields left
    /// out, an empty field left out (the API's default applies, as when a
    /// client omits the parameter), list fields spread into an array.
    pub(crate) fn v2_pairs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (k, v) in &self.fields {
            if CONSOLE_FIELDS.contains(&k.as_str()) || v.trim().is_empty() {
                continue;
            }
            if LIST_FIELDS.contains(&k.as_str()) {
                let items = v
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|s| !s.is_empty());
                for (i, item) in items.enumerate() {
                    out.push((format!("{k}.{i}"), item.to_owned()));
                }
            } else {
                out.push((k.clone(), v.clone()));
            }
        }
        out
    }
}

/// Run `action` with `pairs` as its v2 parameters, exactly as the v2
/// endpoint would after authentication.
pub(crate) async fn run(
    api: &ApiState,
    scope: &Scope,
    action: Action,
    pairs: &[(String, String)],
) -> Result<Value, ApiError> {
    let params = Params::decode(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let reply = v2::dispatch(api, scope, action, &params)
        .await
        .inspect_err(|e| {
            if e.code == ErrorCode::StorageUnavailable {
                api.storage.refused(e.why.log_detail());
            }
        })?;
    reply.into_value()
}

/// An action's refusal as the console shows it: the v2 message and
/// `codeDesc`, and the form field it belongs next to (`None`: the form as a
/// whole).
pub(crate) struct Refusal {
    pub(crate) field: Option<String>,
    pub(crate) message: String,
    pub(crate) code_desc: &'static str,
}

impl Refusal {
    /// `fields`: the names of the form's fields.
    pub(crate) fn of(e: &ApiError, fields: &[&str]) -> Refusal {
        let param = e.param.as_ref().map(|p| p.v2_name().into_owned());
        let field = param.and_then(|p| form_field(&p, fields));
        Refusal {
            field,
            message: e.v2_message(),
            code_desc: e.code.code_desc(),
        }
    }
}

/// The form field a v2 parameter came from: the same name, or the list
/// field of an array element (`userGwCidrBlock.2`).
fn form_field(param: &str, fields: &[&str]) -> Option<String> {
    if fields.contains(&param) {
        return Some(param.to_owned());
    }
    let (base, idx) = param.rsplit_once('.')?;
    (idx.bytes().all(|b| b.is_ascii_digit()) && fields.contains(&base)).then(|| base.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_pairs_leave_out_console_fields_and_blanks_and_spread_lists() {
        let form = Form {
            fields: vec![
                ("csrf".into(), "t".into()),
                ("region".into(), "gz".into()),
                ("vpnConnName".into(), "".into()),
                (
                    "userGwCidrBlock".into(),
                    "10.1.0.0/16\r\n 10.2.0.0/16,10.3.0.0/16".into(),
                ),
                ("IKESet.dhGroupName".into(), "group14".into()),
            ],
        };
        assert_eq!(
            form.v2_pairs(),
            vec![
                ("userGwCidrBlock.0".to_owned(), "10.1.0.0/16".to_owned()),
                ("userGwCidrBlock.1".to_owned(), "10.2.0.0/16".to_owned()),
                ("userGwCidrBlock.2".to_owned(), "10.3.0.0/16".to_owned()),
                ("IKESet.dhGroupName".to_owned(), "group14".to_owned()),
            ]
        );
    }

    #[test]
    fn errors_map_back_to_fields() {
        let fields = ["cidrBlock", "userGwCidrBlock", "IKESet.dhGroupName"];
        assert_eq!(
            form_field("cidrBlock", &fields).as_deref(),
            Some("cidrBlock")
        );
        assert_eq!(
            form_field("userGwCidrBlock.3", &fields).as_deref(),
            Some("userGwCidrBlock")
        );
        assert_eq!(
            form_field("IKESet.dhGroupName", &fields).as_deref(),
            Some("IKESet.dhGroupName")
        );
        assert_eq!(form_field("vpcId", &fields), None);
        assert_eq!(form_field("cidrBlock.x", &fields), None);
    }
}
