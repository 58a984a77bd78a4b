//! `/Bulk` (RFC 7644 §3.7): operations in order, `bulkId` references resolved (including
//! forward references, by deferring an operation until what it references exists), and
//! `failOnErrors` honoured.

use crate::directory::{BaseUrl, Directory, Precondition};
use scimtrail_scim::message::{BulkMethod, BulkOperation, BulkOperationResult, BulkRequest};
use scimtrail_scim::resource::Projection;
use scimtrail_scim::schema::ResourceType;
use scimtrail_scim::{ScimError, ScimType};
use serde_json::Value;
use std::collections::HashMap;

impl Directory {
    /// Runs a bulk request; results come in request order, for the operations that ran.
    pub fn bulk(&mut self, request: &BulkRequest, base: &BaseUrl) -> Vec<BulkOperationResult> {
        let mut resolved: HashMap<String, String> = HashMap::new();
        let mut results: Vec<Option<BulkOperationResult>> = vec![None; request.operations.len()];
        let mut pending: Vec<usize> = (0..request.operations.len()).collect();
        let mut errors = 0u64;
        // Each pass runs every operation whose bulkId references are resolved; an operation
        // waiting on a bulkId that never resolves fails with 409.
        while !pending.is_empty() {
            let mut progressed = false;
            let mut still_pending = Vec::new();
            for index in pending {
                if request.fail_on_errors.is_some_and(|limit| errors >= limit) {
                    break;
                }
                let operation = &request.operations[index];
                let Some((path, data)) = substitute(operation, &resolved) else {
                    still_pending.push(index);
                    continue;
                };
                progressed = true;
                let result = self.run(operation, &path, data.as_ref(), base);
                if result.status >= 400 {
                    errors += 1;
                } else if let (Some(bulk_id), BulkMethod::Post, Some(location)) =
                    (&operation.bulk_id, operation.method, &result.location)
                {
                    if let Some(id) = location.rsplit('/').next() {
                        resolved.insert(bulk_id.clone(), id.to_owned());
                    }
                }
                results[index] = Some(result);
            }
            if request.fail_on_errors.is_some_and(|limit| errors >= limit) {
                break;
            }
            if !progressed {
                for index in still_pending {
                    let operation = &request.operations[index];
                    let error = ScimError::new(409, Some(ScimType::InvalidValue), "a bulkId this operation references was not created by this request (unknown, failed, or circular)");
                    results[index] = Some(failure(operation, error));
                }
                break;
            }
            pending = still_pending;
        }
        results.into_iter().flatten().collect()
    }

    fn run(
        &mut self,
        operation: &BulkOperation,
        path: &str,
        data: Option<&Value>,
        base: &BaseUrl,
    ) -> BulkOperationResult {
        let precondition = Precondition::if_match(operation.version.as_deref());
        let mut segments = path.trim_start_matches('/').splitn(2, '/');
        let endpoint = format!("/{}", segments.next().unwrap_or_default());
        let id = segments.next();
        let Some(rt) = ResourceType::by_endpoint(&endpoint) else {
            return failure(
                operation,
                ScimError::bad_request(
                    ScimType::InvalidPath,
                    format!("\"{path}\" is not a resource path of this service (/Users, /Groups)"),
                ),
            );
        };
        let empty = Value::Null;
        let data = data.unwrap_or(&empty);
        let outcome = match (operation.method, id) {
            (BulkMethod::Post, None) => self.create(rt, data).map(|r| (201, r)),
            (BulkMethod::Put, Some(id)) => self.replace(rt, id, data, &precondition).map(|r| (200, r)),
            (BulkMethod::Patch, Some(id)) => self.patch(rt, id, data, &precondition).map(|r| (200, r)),
            (BulkMethod::Delete, Some(id)) => {
                return match self.delete(rt, id, &precondition) {
                    Ok(()) => BulkOperationResult {
                        method: operation.method,
                        bulk_id: operation.bulk_id.clone(),
                        version: None,
                        location: None,
                        status: 204,
                        response: None,
                    },
                    Err(error) => failure(operation, error),
                };
            }
            (method, _) => {
                return failure(
                    operation,
                    ScimError::bad_request(
                        ScimType::InvalidPath,
                        format!(
                            "{} needs {}",
                            method.as_str(),
                            if method == BulkMethod::Post {
                                "a type path such as /Users"
                            } else {
                                "a resource path such as /Users/{id}"
                            }
                        ),
                    ),
                );
            }
        };
        match outcome {
            Ok((status, resource)) => {
                let rendered = self.render(rt, &resource, base, &Projection::default());
                BulkOperationResult {
                    method: operation.method,
                    bulk_id: operation.bulk_id.clone(),
                    version: rendered
                        .pointer("/meta/version")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    location: rendered
                        .pointer("/meta/location")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    status,
                    response: None,
                }
            }
            Err(error) => failure(operation, error),
        }
    }
}

fn failure(operation: &BulkOperation, error: ScimError) -> BulkOperationResult {
    BulkOperationResult::failed(operation, &error)
}

/// The operation's path and data with every `bulkId:X` replaced by the id it created, or
/// `None` while one of them is not resolved yet.
fn substitute(operation: &BulkOperation, resolved: &HashMap<String, String>) -> Option<(String, Option<Value>)> {
    let (path, data, unresolved) = operation.resolved(resolved);
    unresolved.is_empty().then_some((path, data))
}
