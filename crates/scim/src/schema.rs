//! The schema registry: the core `User`, `Group` and `EnterpriseUser` schemas of RFC 7643
//! (§4, §8.7.1) as static data, and [`ResourceType`], which resolves attribute names.
//!
//! Attribute names are compared case-insensitively everywhere (RFC 7643 §2.1); resolution
//! returns the definition, whose `name` is the canonical spelling.

use crate::path::AttrPath;
use serde_json::{json, Map, Value};

/// URN of the core User schema.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// URN of the core Group schema.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// URN of the enterprise User extension.
pub const ENTERPRISE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// The data type of an attribute (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    /// A JSON string.
    String,
    /// A JSON `true` or `false`.
    Boolean,
    /// A JSON number, possibly with a fraction.
    Decimal,
    /// A JSON number without fraction or exponent.
    Integer,
    /// An `xsd:dateTime` string (RFC 3339 profile).
    DateTime,
    /// A base64 string.
    Binary,
    /// A URI string.
    Reference,
    /// An object of sub-attributes.
    Complex,
}

impl AttrType {
    /// The keyword used in schema representations.
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        }
    }
}

/// When an attribute may be written (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    /// Set by the service provider only; client values are ignored.
    ReadOnly,
    /// Freely written.
    ReadWrite,
    /// Written at creation (of the resource or of the record), never changed after.
    Immutable,
    /// Written, never returned.
    WriteOnly,
}

/// When an attribute is returned (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    /// Always, whatever `attributes`/`excludedAttributes` say.
    Always,
    /// Never.
    Never,
    /// Unless excluded.
    Default,
    /// Only when named in `attributes`.
    Request,
}

/// Uniqueness of an attribute's values (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    /// No uniqueness.
    None,
    /// Unique within the service provider.
    Server,
    /// Globally unique.
    Global,
}

/// One attribute definition, with everything RFC 7643 §7 describes.
#[derive(Debug, Clone, Copy)]
pub struct AttributeDef {
    /// Canonical spelling of the name.
    pub name: &'static str,
    /// The data type.
    pub kind: AttrType,
    /// Whether the value is an array.
    pub multi_valued: bool,
    /// Whether a resource must carry it.
    pub required: bool,
    /// Whether string comparison is case-sensitive.
    pub case_exact: bool,
    /// When it may be written.
    pub mutability: Mutability,
    /// When it is returned.
    pub returned: Returned,
    /// Uniqueness of its values.
    pub uniqueness: Uniqueness,
    /// Suggested values (not enforced: RFC 7643 §7 says they MAY be used).
    pub canonical_values: &'static [&'static str],
    /// For references, what they may point to.
    pub reference_types: &'static [&'static str],
    /// For complex attributes, the sub-attributes.
    pub sub_attributes: &'static [AttributeDef],
    /// What it is, for a human.
    pub description: &'static str,
}

const fn attr(name: &'static str, kind: AttrType, description: &'static str) -> AttributeDef {
    AttributeDef {
        name,
        kind,
        multi_valued: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        uniqueness: Uniqueness::None,
        canonical_values: &[],
        reference_types: &[],
        sub_attributes: &[],
        description,
    }
}

impl AttributeDef {
    const fn multi(self) -> Self {
        AttributeDef {
            multi_valued: true,
            ..self
        }
    }
    const fn required(self) -> Self {
        AttributeDef { required: true, ..self }
    }
    const fn case_exact(self) -> Self {
        AttributeDef {
            case_exact: true,
            ..self
        }
    }
    const fn mutability(self, mutability: Mutability) -> Self {
        AttributeDef { mutability, ..self }
    }
    const fn returned(self, returned: Returned) -> Self {
        AttributeDef { returned, ..self }
    }
    const fn unique(self, uniqueness: Uniqueness) -> Self {
        AttributeDef { uniqueness, ..self }
    }
    const fn canonical(self, canonical_values: &'static [&'static str]) -> Self {
        AttributeDef {
            canonical_values,
            ..self
        }
    }
    const fn refs(self, reference_types: &'static [&'static str]) -> Self {
        AttributeDef {
            reference_types,
            ..self
        }
    }
    const fn subs(self, sub_attributes: &'static [AttributeDef]) -> Self {
        AttributeDef { sub_attributes, ..self }
    }

    /// The sub-attribute with this name (case-insensitive).
    pub fn sub_attribute(&self, name: &str) -> Option<&'static AttributeDef> {
        self.sub_attributes.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The schema representation of this attribute (RFC 7643 §7).
    pub fn to_json(&self) -> Value {
        let mut out = json!({
            "name": self.name,
            "type": self.kind.as_str(),
            "multiValued": self.multi_valued,
            "description": self.description,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": match self.mutability {
                Mutability::ReadOnly => "readOnly",
                Mutability::ReadWrite => "readWrite",
                Mutability::Immutable => "immutable",
                Mutability::WriteOnly => "writeOnly",
            },
            "returned": match self.returned {
                Returned::Always => "always",
                Returned::Never => "never",
                Returned::Default => "default",
                Returned::Request => "request",
            },
            "uniqueness": match self.uniqueness {
                Uniqueness::None => "none",
                Uniqueness::Server => "server",
                Uniqueness::Global => "global",
            },
        });
        if !self.canonical_values.is_empty() {
            out["canonicalValues"] = json!(self.canonical_values);
        }
        if !self.reference_types.is_empty() {
            out["referenceTypes"] = json!(self.reference_types);
        }
        if !self.sub_attributes.is_empty() {
            out["subAttributes"] = self.sub_attributes.iter().map(AttributeDef::to_json).collect();
        }
        out
    }
}

/// A schema: a URN and its attributes.
#[derive(Debug)]
pub struct Schema {
    /// The schema URN.
    pub id: &'static str,
    /// Its short name.
    pub name: &'static str,
    /// What it describes.
    pub description: &'static str,
    /// Its top-level attributes.
    pub attributes: &'static [AttributeDef],
}

impl Schema {
    /// The top-level attribute with this name (case-insensitive).
    pub fn attribute(&self, name: &str) -> Option<&'static AttributeDef> {
        self.attributes.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The schema representation (RFC 7643 §7), without `meta`.
    pub fn to_json(&self) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": self.attributes.iter().map(AttributeDef::to_json).collect::<Vec<_>>(),
        })
    }
}

use AttrType::{Binary, Boolean, Complex, DateTime, Reference, String as Str};
use Mutability::{Immutable, ReadOnly, WriteOnly};

/// The common attributes every resource has (RFC 7643 §3.1). They are not part of any schema's
/// attribute list; `schemas` is included so that paths and filters can name it.
pub static COMMON_ATTRIBUTES: &[AttributeDef] = COMMON;

const COMMON: &[AttributeDef] = &[
    attr(
        "id",
        Str,
        "Unique identifier for the resource, assigned by the service provider.",
    )
    .case_exact()
    .mutability(ReadOnly)
    .returned(Returned::Always)
    .unique(Uniqueness::Server),
    attr(
        "externalId",
        Str,
        "Identifier of the resource as defined by the provisioning client.",
    )
    .case_exact(),
    attr("meta", Complex, "Resource metadata.")
        .mutability(ReadOnly)
        .subs(META_SUBS),
    attr("schemas", Reference, "The schema URNs the resource conforms to.")
        .multi()
        .required()
        .returned(Returned::Always),
];

const META_SUBS: &[AttributeDef] = &[
    attr("resourceType", Str, "The name of the resource type.")
        .case_exact()
        .mutability(ReadOnly),
    attr("created", DateTime, "When the resource was added.").mutability(ReadOnly),
    attr("lastModified", DateTime, "When the resource was last updated.").mutability(ReadOnly),
    attr("location", Reference, "The URI of the resource.")
        .case_exact()
        .mutability(ReadOnly)
        .refs(&["uri"]),
    attr("version", Str, "The version (ETag) of the resource.")
        .case_exact()
        .mutability(ReadOnly),
];

const fn multi_sub(kind: AttrType, types: &'static [&'static str]) -> [AttributeDef; 4] {
    [
        attr("value", kind, "The value."),
        attr(
            "display",
            Str,
            "A human-readable name, primarily used for display purposes.",
        ),
        attr("type", Str, "A label indicating the value's function.").canonical(types),
        attr(
            "primary",
            Boolean,
            "Whether this is the primary value; at most one is true.",
        ),
    ]
}

const EMAIL_SUBS: &[AttributeDef] = &multi_sub(Str, &["work", "home", "other"]);
const PHONE_SUBS: &[AttributeDef] = &multi_sub(Str, &["work", "home", "mobile", "fax", "pager", "other"]);
const IM_SUBS: &[AttributeDef] = &multi_sub(Str, &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]);
const PHOTO_SUBS: &[AttributeDef] = &[
    attr("value", Reference, "URL of a photo of the user.").refs(&["external"]),
    attr(
        "display",
        Str,
        "A human-readable name, primarily used for display purposes.",
    ),
    attr("type", Str, "A label indicating the photo's function.").canonical(&["photo", "thumbnail"]),
    attr("primary", Boolean, "Whether this is the primary photo."),
];
const PLAIN_SUBS: &[AttributeDef] = &multi_sub(Str, &[]);
const CERT_SUBS: &[AttributeDef] = &multi_sub(Binary, &[]);

const NAME_SUBS: &[AttributeDef] = &[
    attr("formatted", Str, "The full name, formatted for display."),
    attr("familyName", Str, "The family name."),
    attr("givenName", Str, "The given name."),
    attr("middleName", Str, "The middle name(s)."),
    attr("honorificPrefix", Str, "The honorific prefix(es)."),
    attr("honorificSuffix", Str, "The honorific suffix(es)."),
];

const ADDRESS_SUBS: &[AttributeDef] = &[
    attr("formatted", Str, "The full mailing address, formatted for display."),
    attr("streetAddress", Str, "The street address."),
    attr("locality", Str, "The city or locality."),
    attr("region", Str, "The state or region."),
    attr("postalCode", Str, "The zip code or postal code."),
    attr("country", Str, "The country name (ISO 3166-1 alpha-2)."),
    attr("type", Str, "A label indicating the address's function.").canonical(&["work", "home", "other"]),
    attr("primary", Boolean, "Whether this is the primary address."),
];

const USER_GROUP_SUBS: &[AttributeDef] = &[
    attr("value", Str, "The identifier of the group.").mutability(ReadOnly),
    attr("$ref", Reference, "The URI of the group.")
        .mutability(ReadOnly)
        .refs(&["User", "Group"]),
    attr("display", Str, "A human-readable name of the group.").mutability(ReadOnly),
    attr("type", Str, "Direct or indirect membership.")
        .mutability(ReadOnly)
        .canonical(&["direct", "indirect"]),
];

const USER_ATTRIBUTES: &[AttributeDef] = &[
    attr("userName", Str, "Unique identifier for the user, used to authenticate.")
        .required()
        .unique(Uniqueness::Server),
    attr("name", Complex, "The components of the user's name.").subs(NAME_SUBS),
    attr("displayName", Str, "The name of the user, suitable for display."),
    attr("nickName", Str, "The casual way to address the user."),
    attr("profileUrl", Reference, "A URI of the user's online profile.").refs(&["external"]),
    attr("title", Str, "The user's title."),
    attr(
        "userType",
        Str,
        "The relationship between the organization and the user.",
    ),
    attr(
        "preferredLanguage",
        Str,
        "The user's preferred written or spoken language.",
    ),
    attr("locale", Str, "The user's default location, for localisation."),
    attr("timezone", Str, "The user's time zone (IANA name)."),
    attr("active", Boolean, "The user's administrative status."),
    attr("password", Str, "The user's cleartext password.")
        .mutability(WriteOnly)
        .returned(Returned::Never),
    attr("emails", Complex, "Email addresses for the user.")
        .multi()
        .subs(EMAIL_SUBS),
    attr("phoneNumbers", Complex, "Phone numbers for the user.")
        .multi()
        .subs(PHONE_SUBS),
    attr("ims", Complex, "Instant messaging addresses for the user.")
        .multi()
        .subs(IM_SUBS),
    attr("photos", Complex, "URLs of photos of the user.")
        .multi()
        .subs(PHOTO_SUBS),
    attr("addresses", Complex, "Physical mailing addresses for the user.")
        .multi()
        .subs(ADDRESS_SUBS),
    attr("groups", Complex, "The groups the user belongs to.")
        .multi()
        .mutability(ReadOnly)
        .subs(USER_GROUP_SUBS),
    attr("entitlements", Complex, "Entitlements of the user.")
        .multi()
        .subs(PLAIN_SUBS),
    attr("roles", Complex, "Roles of the user.").multi().subs(PLAIN_SUBS),
    attr("x509Certificates", Complex, "Certificates issued to the user.")
        .multi()
        .subs(CERT_SUBS),
];

const MEMBER_SUBS: &[AttributeDef] = &[
    attr("value", Str, "Identifier of the member.")
        .case_exact()
        .mutability(Immutable),
    attr("$ref", Reference, "The URI of the member.")
        .mutability(Immutable)
        .refs(&["User", "Group"]),
    attr("type", Str, "The type of member.")
        .mutability(Immutable)
        .canonical(&["User", "Group"]),
    attr(
        "display",
        Str,
        "A human-readable name of the member, set by the service provider.",
    )
    .mutability(ReadOnly),
];

const GROUP_ATTRIBUTES: &[AttributeDef] = &[
    attr("displayName", Str, "A human-readable name for the group.").required(),
    attr("members", Complex, "The members of the group.")
        .multi()
        .subs(MEMBER_SUBS),
];

const MANAGER_SUBS: &[AttributeDef] = &[
    attr("value", Str, "The id of the manager."),
    attr("$ref", Reference, "The URI of the manager.").refs(&["User"]),
    attr("displayName", Str, "The display name of the manager.").mutability(ReadOnly),
];

const ENTERPRISE_ATTRIBUTES: &[AttributeDef] = &[
    attr(
        "employeeNumber",
        Str,
        "A string identifier assigned by the organization.",
    ),
    attr("costCenter", Str, "The name of a cost center."),
    attr("organization", Str, "The name of an organization."),
    attr("division", Str, "The name of a division."),
    attr("department", Str, "The name of a department."),
    attr("manager", Complex, "The user's manager.").subs(MANAGER_SUBS),
];

/// The core User schema (RFC 7643 §4.1).
pub static USER: Schema = Schema {
    id: USER_SCHEMA,
    name: "User",
    description: "User Account",
    attributes: USER_ATTRIBUTES,
};

/// The core Group schema (RFC 7643 §4.2).
pub static GROUP: Schema = Schema {
    id: GROUP_SCHEMA,
    name: "Group",
    description: "Group",
    attributes: GROUP_ATTRIBUTES,
};

/// The enterprise User extension (RFC 7643 §4.3).
pub static ENTERPRISE_USER: Schema = Schema {
    id: ENTERPRISE_USER_SCHEMA,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: ENTERPRISE_ATTRIBUTES,
};

/// An extension schema of a resource type.
#[derive(Debug)]
pub struct SchemaExtension {
    /// The extension schema.
    pub schema: &'static Schema,
    /// Whether every resource must carry it.
    pub required: bool,
}

/// A resource type (RFC 7643 §6): a core schema and its extensions.
#[derive(Debug)]
pub struct ResourceType {
    /// Its name (`User`).
    pub name: &'static str,
    /// Its endpoint (`/Users`).
    pub endpoint: &'static str,
    /// What it is.
    pub description: &'static str,
    /// The core schema.
    pub schema: &'static Schema,
    /// The extension schemas.
    pub extensions: &'static [SchemaExtension],
}

/// The User resource type, with the enterprise extension.
pub static USER_TYPE: ResourceType = ResourceType {
    name: "User",
    endpoint: "/Users",
    description: "User Account",
    schema: &USER,
    extensions: &[SchemaExtension {
        schema: &ENTERPRISE_USER,
        required: false,
    }],
};

/// The Group resource type.
pub static GROUP_TYPE: ResourceType = ResourceType {
    name: "Group",
    endpoint: "/Groups",
    description: "Group",
    schema: &GROUP,
    extensions: &[],
};

/// Every resource type this crate knows.
pub static RESOURCE_TYPES: [&ResourceType; 2] = [&USER_TYPE, &GROUP_TYPE];

/// Every schema this crate knows.
pub static SCHEMAS: [&Schema; 3] = [&USER, &GROUP, &ENTERPRISE_USER];

/// Where a resolved attribute lives in a resource's JSON.
#[derive(Debug, Clone, Copy)]
pub struct Resolved {
    /// `None` for core and common attributes (top level); the extension schema otherwise
    /// (inside the object keyed by its URN).
    pub extension: Option<&'static Schema>,
    /// The attribute.
    pub attr: &'static AttributeDef,
    /// The sub-attribute, when the path names one.
    pub sub: Option<&'static AttributeDef>,
}

impl Resolved {
    /// The definition the path ends at: the sub-attribute if any, else the attribute.
    pub fn leaf(&self) -> &'static AttributeDef {
        self.sub.unwrap_or(self.attr)
    }

    /// The canonical spelling of the path (`emails.value`,
    /// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`).
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        if let Some(ext) = self.extension {
            out.push_str(ext.id);
            out.push(':');
        }
        out.push_str(self.attr.name);
        if let Some(sub) = self.sub {
            out.push('.');
            out.push_str(sub.name);
        }
        out
    }
}

impl ResourceType {
    /// The resource type served at an endpoint (`/Users`), case-sensitive as URLs are.
    pub fn by_endpoint(endpoint: &str) -> Option<&'static ResourceType> {
        RESOURCE_TYPES.iter().copied().find(|rt| rt.endpoint == endpoint)
    }

    /// The resource type whose core schema is `urn` (case-insensitive).
    pub fn by_schema(urn: &str) -> Option<&'static ResourceType> {
        RESOURCE_TYPES
            .iter()
            .copied()
            .find(|rt| rt.schema.id.eq_ignore_ascii_case(urn))
    }

    /// The extension with this URN (case-insensitive).
    pub fn extension(&self, urn: &str) -> Option<&'static SchemaExtension> {
        self.extensions.iter().find(|e| e.schema.id.eq_ignore_ascii_case(urn))
    }

    /// A top-level core or common attribute (case-insensitive).
    pub fn top_attribute(&self, name: &str) -> Option<&'static AttributeDef> {
        self.schema
            .attribute(name)
            .or_else(|| COMMON_ATTRIBUTES.iter().find(|a| a.name.eq_ignore_ascii_case(name)))
    }

    /// Resolves an attribute path. Unqualified names resolve to core and common attributes
    /// only: extension attributes must be URN-qualified (RFC 7644 §3.10). Returns `None`
    /// for anything unknown.
    pub fn resolve(&self, path: &AttrPath) -> Option<Resolved> {
        let (extension, attr) = match &path.urn {
            None => (None, self.top_attribute(&path.name)?),
            Some(urn) if urn.eq_ignore_ascii_case(self.schema.id) => (None, self.schema.attribute(&path.name)?),
            Some(urn) => {
                let ext = self.extension(urn)?;
                (Some(ext.schema), ext.schema.attribute(&path.name)?)
            }
        };
        let sub = match &path.sub {
            None => None,
            Some(sub) => Some(attr.sub_attribute(sub)?),
        };
        Some(Resolved { extension, attr, sub })
    }

    /// The `schemas` a resource of this type must declare given its extension objects.
    pub fn schema_urns(&self) -> impl Iterator<Item = &'static str> + '_ {
        std::iter::once(self.schema.id).chain(self.extensions.iter().map(|e| e.schema.id))
    }

    /// The resource type representation (RFC 7643 §6), without `meta`.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert(
            "schemas".into(),
            json!(["urn:ietf:params:scim:schemas:core:2.0:ResourceType"]),
        );
        out.insert("id".into(), json!(self.name));
        out.insert("name".into(), json!(self.name));
        out.insert("endpoint".into(), json!(self.endpoint));
        out.insert("description".into(), json!(self.description));
        out.insert("schema".into(), json!(self.schema.id));
        out.insert(
            "schemaExtensions".into(),
            self.extensions
                .iter()
                .map(|e| json!({"schema": e.schema.id, "required": e.required}))
                .collect(),
        );
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(rt: &ResourceType, path: &str) -> Option<String> {
        rt.resolve(&AttrPath::parse(path).ok()?).map(|r| r.canonical())
    }

    #[test]
    fn lookup_is_case_insensitive_and_gives_canonical_spelling() {
        let cases = [
            ("USERNAME", Some("userName")),
            ("name.GIVENNAME", Some("name.givenName")),
            ("Emails.Value", Some("emails.value")),
            ("urn:ietf:params:scim:schemas:core:2.0:User:userName", Some("userName")),
            (
                "URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER:name.familyName",
                Some("name.familyName"),
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
                Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"),
            ),
            (
                "urn:ietf:params:scim:schemas:extension:Enterprise:2.0:User:MANAGER.value",
                Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"),
            ),
            ("meta.lastmodified", Some("meta.lastModified")),
            ("id", Some("id")),
            ("manager", None),
            ("employeeNumber", None),
            ("name.nope", None),
            ("urn:example:unknown:attr", None),
        ];
        for (input, want) in cases {
            assert_eq!(resolve(&USER_TYPE, input).as_deref(), want, "{input}");
        }
        assert_eq!(resolve(&GROUP_TYPE, "MEMBERS.VALUE").as_deref(), Some("members.value"));
        assert_eq!(resolve(&GROUP_TYPE, "userName"), None);
    }

    #[test]
    fn rfc_characteristics_are_as_published() {
        let user_name = USER.attribute("username").unwrap();
        assert!(user_name.required && !user_name.case_exact);
        assert_eq!(user_name.uniqueness, Uniqueness::Server);
        let password = USER.attribute("password").unwrap();
        assert_eq!((password.mutability, password.returned), (WriteOnly, Returned::Never));
        let id = USER_TYPE.top_attribute("ID").unwrap();
        assert!(id.case_exact);
        assert_eq!((id.mutability, id.returned), (ReadOnly, Returned::Always));
        assert!(USER_TYPE.top_attribute("externalId").unwrap().case_exact);
        let members = GROUP.attribute("members").unwrap();
        assert!(members.multi_valued);
        assert_eq!(members.sub_attribute("value").unwrap().mutability, Immutable);
    }

    #[test]
    fn schema_representation_lists_sub_attributes() {
        let json = USER.to_json();
        let emails = json["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "emails")
            .unwrap();
        assert_eq!(emails["subAttributes"].as_array().unwrap().len(), 4);
        assert_eq!(emails["multiValued"], true);
    }
}
