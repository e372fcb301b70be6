//! Errors of the request path and their one mapping to HTTP responses.
//!
//! Every refusal is a status plus one short plain-text line. `401` carries
//! the Basic challenge and the same body whatever the reason, so a client
//! cannot tell an unknown user from a wrong password.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of every response davgate sends.
pub type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// A body from a static or owned byte string.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("authentication required")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("credentials could not be checked right now; try again")]
    StoreUnavailable,
    #[error("too many failed sign-ins; try again later")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("too many new sign-ins at once; try again")]
    Busy,
    #[error("{0}")]
    BadGateway(&'static str),
    #[error("the backend did not answer in time")]
    GatewayTimeout,
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::StoreUnavailable | Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// How the request ended, for metrics and the access log.
    pub fn outcome(&self) -> crate::metrics::Outcome {
        use crate::metrics::Outcome;
        match self {
            Self::Unauthorized => Outcome::Unauthenticated,
            Self::BadRequest(_) => Outcome::BadRequest,
            Self::Forbidden(_) => Outcome::ForbiddenScope,
            Self::StoreUnavailable => Outcome::StoreUnavailable,
            Self::TooManyAttempts { .. } => Outcome::Throttled,
            Self::Busy => Outcome::Busy,
            Self::BadGateway(_) | Self::GatewayTimeout => Outcome::UpstreamError,
        }
    }

    /// The response body: the reason, one line.
    pub fn body_text(&self) -> String {
        format!("{self}\n")
    }

    /// The response: status, one plain line, and the Basic challenge on `401`.
    pub fn response(&self, challenge: &HeaderValue) -> Response<Body> {
        let mut res = Response::new(full(self.body_text()));
        *res.status_mut() = self.status();
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match self {
            Self::Unauthorized => {
                h.insert(header::WWW_AUTHENTICATE, challenge.clone());
            }
            Self::StoreUnavailable => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            Self::Busy => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::TooManyAttempts { retry_after_secs } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        res
    }
}

impl From<crate::gateway::scope::Refusal> for GatewayError {
    fn from(r: crate::gateway::scope::Refusal) -> Self {
        use crate::gateway::scope::Refusal;
        match r {
            Refusal::BadPath(why) => Self::BadRequest(why),
            Refusal::OutOfScope(why) => Self::Forbidden(why),
        }
    }
}

/// The `WWW-Authenticate` value for `realm` (RFC 7617 §2.1 charset).
pub fn basic_challenge(realm: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Basic realm=\"{realm}\", charset=\"UTF-8\""))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic realm=\"davgate\", charset=\"UTF-8\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_its_status() {
        let c = basic_challenge("dav");
        let cases = [
            (GatewayError::Unauthorized, 401),
            (GatewayError::BadRequest("x"), 400),
            (GatewayError::Forbidden("x"), 403),
            (GatewayError::StoreUnavailable, 503),
            (GatewayError::Busy, 503),
            (GatewayError::TooManyAttempts { retry_after_secs: 60 }, 429),
            (GatewayError::BadGateway("x"), 502),
            (GatewayError::GatewayTimeout, 504),
        ];
        for (e, status) in cases {
            let r = e.response(&c);
            assert_eq!(r.status().as_u16(), status);
            assert_eq!(r.headers().contains_key(header::WWW_AUTHENTICATE), status == 401);
        }
    }

    #[test]
    fn challenge_names_realm_and_charset() {
        assert_eq!(basic_challenge("dav").to_str().unwrap(), "Basic realm=\"dav\", charset=\"UTF-8\"");
    }
}
