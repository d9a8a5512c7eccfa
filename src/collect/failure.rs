//! What a failed AWS call becomes: an error code and message for the snapshot's `gaps`.
//!
//! Every collector funnels SDK errors through [`ApiFailure::from_sdk`], so a gap always names
//! the AWS error code (`AccessDeniedException`, `ThrottlingException`, ...) or, for failures
//! that never reached AWS, what happened instead (`TimeoutError`, `DispatchFailure`, or
//! `KeyproofReadOnlyGuard` when the guard refused a call outside the read-only policy).

use crate::collect::guard::Refused;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::error::Error;

/// A failed call, reduced to what the snapshot records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiFailure {
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ApiFailure {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> ApiFailure {
        ApiFailure {
            code: code.into(),
            message: message.into(),
        }
    }

    /// Classifies an SDK error.
    pub fn from_sdk<E, R>(err: &SdkError<E, R>) -> ApiFailure
    where
        E: ProvideErrorMetadata + Error + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        if let Some(refused) = find_source::<Refused>(err) {
            return ApiFailure::new("KeyproofReadOnlyGuard", refused.to_string());
        }
        let code = match err {
            SdkError::ServiceError(_) => err.code().unwrap_or("UnknownServiceError").to_string(),
            SdkError::TimeoutError(_) => "TimeoutError".into(),
            SdkError::DispatchFailure(_) => "DispatchFailure".into(),
            SdkError::ResponseError(_) => "ResponseError".into(),
            SdkError::ConstructionFailure(_) => "ConstructionFailure".into(),
            _ => "UnknownError".into(),
        };
        let message = match err.message() {
            Some(m) => m.to_string(),
            None => DisplayErrorContext(err).to_string(),
        };
        ApiFailure { code, message }
    }

    /// True for the error codes with which AWS says "this operation does not apply to this
    /// key" (for example rotation status of an asymmetric key), which are expected, not gaps.
    pub fn is_unsupported_for_resource(&self) -> bool {
        self.code == "UnsupportedOperationException"
    }
}

/// Walks an error's source chain for a value of type `T`.
pub(crate) fn find_source<'e, T: Error + 'static>(err: &'e (dyn Error + 'static)) -> Option<&'e T> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}
