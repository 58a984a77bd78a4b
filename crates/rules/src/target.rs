//! The target-application profile: what the application behind a route accepts.

use serde::Deserialize;

/// What the application supports, where it changes what the rules do. The default is a
/// strictly RFC 7643/7644 application, such as `scimtrail refapp`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Target {
    /// The media type it accepts for request bodies (N22).
    pub content_type: String,
    /// Whether group members must carry `type` (N17).
    pub member_type_required: bool,
    /// Whether it accepts PATCH; without, PATCH becomes PUT (N20).
    pub patch: bool,
    /// Whether it accepts value-path filters in PATCH paths (`emails[type eq "work"].value`);
    /// without, such operations replace the whole attribute (R13).
    pub value_path_filters: bool,
}

impl Default for Target {
    fn default() -> Self {
        Target {
            content_type: "application/scim+json".to_owned(),
            member_type_required: false,
            patch: true,
            value_path_filters: true,
        }
    }
}
