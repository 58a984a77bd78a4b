//! The writes to a user: PATCH's shapes, PUT, `active` as a string, ETags.

use super::*;

impl Battery {
    pub(super) fn patch_body(operation: Value) -> Value {
        json!({"schemas": [PATCH_OP], "Operations": [operation]})
    }

    /// PATCHes a user and reads it back: the PATCH's status and the user after it.
    pub(super) async fn patch_user(
        &mut self,
        probe: Probe,
        id: &str,
        operation: Value,
    ) -> Result<(u16, Value), String> {
        let path = format!("/Users/{}", encode(id));
        let reply = self
            .send(probe, "PATCH", &path, Some(&Self::patch_body(operation)))
            .await?;
        let after = self.get(probe, "Users", id).await?;
        Ok((reply.status, after.body))
    }

    pub(super) async fn patches(&mut self, alpha: &Person) {
        let id = alpha.id.clone();
        // Supported at all, and how it answers.
        match self
            .patch_user(
                Probe::PatchSupport,
                &id,
                json!({"op": "replace", "path": "title", "value": "probe-1"}),
            )
            .await
        {
            Ok((status, after)) => {
                let applied = success(status) && after["title"] == "probe-1";
                self.seen.patch = Some(applied);
                if applied {
                    self.seen.patch_status = Some(status);
                    if let Some(e) = self.evidence.get(&Probe::PatchSupport).cloned() {
                        self.evidence.insert(Probe::PatchAnswer, e);
                    }
                }
            }
            Err(error) => self.cannot_tell(Probe::PatchSupport, error),
        }
        if self.seen.patch != Some(true) {
            for probe in [Probe::OpCase, Probe::PathlessPatch, Probe::ValueFilterPath] {
                self.cannot_tell(probe, "PATCH is not applied");
            }
            self.string_boolean_by_put(alpha).await;
            return;
        }
        let probes: [(Probe, Value, Applied); 3] = [
            (
                Probe::OpCase,
                json!({"op": "Replace", "path": "title", "value": "probe-2"}),
                |after| after["title"] == "probe-2",
            ),
            (
                Probe::PathlessPatch,
                json!({"op": "replace", "value": {"title": "probe-3"}}),
                |after| after["title"] == "probe-3",
            ),
            (
                Probe::ValueFilterPath,
                json!({"op": "replace", "path": "emails[type eq \"work\"].value", "value": "probe-changed@example.com"}),
                |after| {
                    after["emails"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|e| e["value"] == "probe-changed@example.com")
                },
            ),
        ];
        for (probe, operation, applied) in probes {
            match self.patch_user(probe, &id, operation).await {
                Ok((status, after)) => {
                    let seen = Some(success(status) && applied(&after));
                    match probe {
                        Probe::OpCase => self.seen.op_case_insensitive = seen,
                        Probe::PathlessPatch => self.seen.pathless_patch = seen,
                        _ => self.seen.value_filter_path = seen,
                    }
                }
                Err(error) => self.cannot_tell(probe, error),
            }
        }
        // "active":"False": refused, taken as false, or accepted and ignored.
        let probe = Probe::StringBoolean;
        match self
            .patch_user(probe, &id, json!({"op": "replace", "path": "active", "value": "False"}))
            .await
        {
            Ok((status, after)) => {
                self.seen.string_boolean = Some(string_boolean(status, &after));
                let _ = self
                    .patch_user(probe, &id, json!({"op": "replace", "path": "active", "value": true}))
                    .await;
            }
            Err(error) => self.cannot_tell(probe, error),
        }
    }

    /// `"active":"False"` in a PUT, for an application without PATCH.
    pub(super) async fn string_boolean_by_put(&mut self, alpha: &Person) {
        let probe = Probe::StringBoolean;
        let mut body = self.user(alpha.who);
        body["active"] = json!("False");
        let path = format!("/Users/{}", encode(&alpha.id));
        match self.send(probe, "PUT", &path, Some(&body)).await {
            Ok(reply) => {
                if let Ok(after) = self.get(probe, "Users", &alpha.id).await {
                    self.seen.string_boolean = Some(string_boolean(reply.status, &after.body));
                }
                let restored = self.user(alpha.who);
                let _ = self.send(probe, "PUT", &path, Some(&restored)).await;
            }
            Err(error) => self.cannot_tell(probe, error),
        }
    }

    pub(super) async fn put(&mut self, alpha: &Person) {
        let probe = Probe::PutSupport;
        let mut body = self.user(alpha.who);
        body["title"] = json!("probe-put");
        let path = format!("/Users/{}", encode(&alpha.id));
        match self.send(probe, "PUT", &path, Some(&body)).await {
            Ok(reply) => match self.get(probe, "Users", &alpha.id).await {
                Ok(after) => self.seen.put = Some(reply.ok() && after.body["title"] == "probe-put"),
                Err(error) => self.cannot_tell(probe, error),
            },
            Err(error) => self.cannot_tell(probe, error),
        }
    }

    pub(super) async fn etags(&mut self, alpha: &Person) {
        let probe = Probe::Etags;
        let reply = match self.get(probe, "Users", &alpha.id).await {
            Ok(reply) => reply,
            Err(error) => return self.cannot_tell(probe, error),
        };
        let given = reply.header("etag").is_some() || reply.body.pointer("/meta/version").is_some();
        let mut etags = self.seen.etags.unwrap_or_default();
        etags.given = given;
        if given {
            let path = format!("/Users/{}", encode(&alpha.id));
            let stale = [("if-match", "W/\"scimtrail-probe-stale\"")];
            let attempt = if self.seen.patch == Some(true) {
                let body = Self::patch_body(json!({"op": "replace", "path": "title", "value": "probe-stale"}));
                self.send_with(probe, "PATCH", &path, Some(&body), self.content_type, &stale)
                    .await
            } else {
                let mut body = self.user(alpha.who);
                body["title"] = json!("probe-stale");
                self.send_with(probe, "PUT", &path, Some(&body), self.content_type, &stale)
                    .await
            };
            match attempt {
                Ok(reply) => etags.stale_if_match = Some(reply.status),
                Err(error) => self.cannot_tell(probe, error),
            }
        }
        self.seen.etags = Some(etags);
    }

    // === groups and members ===
}
