//! Reading `application/x-www-form-urlencoded` bodies, bounded.

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::collections::HashMap;

/// Forms here are a few fields; anything larger is not ours.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// A decoded form: single values by name, and every value of a repeated
/// name (checkboxes).
#[derive(Default)]
pub struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    /// Reads the body; a too large or cut-off one is the `413` to send.
    pub async fn read(body: Incoming) -> Result<Form, http::Response<crate::error::Body>> {
        let bytes = Limited::new(body, MAX_FORM_BYTES)
            .collect()
            .await
            .map_err(|_| super::plain(http::StatusCode::PAYLOAD_TOO_LARGE, "the form is too large or was cut off\n"))?
            .to_bytes();
        Ok(Self::parse(&bytes))
    }

    pub fn parse(bytes: &[u8]) -> Form {
        Form { fields: form_urlencoded::parse(bytes).into_owned().collect() }
    }

    /// The first value of `name`, trimmed; empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim()).unwrap_or("")
    }

    /// The value of `name` exactly as sent (passwords keep their spaces).
    pub fn raw(&self, name: &str) -> &str {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|(k, _)| k == name)
    }
}

/// Field name → message, shown next to the field.
#[derive(Default)]
pub struct Errors(HashMap<&'static str, String>);

impl Errors {
    pub fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.entry(field).or_insert_with(|| message.into());
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Query string parameter `name`, decoded.
pub fn query_param(uri: &http::Uri, name: &str) -> Option<String> {
    form_urlencoded::parse(uri.query()?.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_keep_repeated_fields_and_raw_values() {
        let f = Form::parse(b"name=+My%20Phone+&service=caldav&service=carddav&pw=+a+b+");
        assert_eq!(f.get("name"), "My Phone");
        assert_eq!(f.all("service"), ["caldav", "carddav"]);
        assert_eq!(f.raw("pw"), " a b ");
        assert_eq!(f.get("missing"), "");
        assert!(f.has("pw") && !f.has("x"));
    }
}
