//! How deactivations and deletions read back.

use super::*;

impl Battery {
    pub(super) async fn listed(&mut self, probe: Probe, person: &Person) -> Result<bool, String> {
        let filter = format!("userName eq {}", json!(self.user_name(person.who)));
        Ok(self
            .search(probe, &filter, "")
            .await?
            .is_some_and(|listed| listed.ids.contains(&person.id)))
    }

    pub(super) async fn deactivation(&mut self, bravo: &Person) {
        let probe = Probe::Deactivation;
        let path = format!("/Users/{}", encode(&bravo.id));
        let sent = if self.seen.patch == Some(true) {
            let body = Self::patch_body(json!({"op": "replace", "path": "active", "value": false}));
            self.send(probe, "PATCH", &path, Some(&body)).await
        } else {
            let mut body = self.user(bravo.who);
            body["active"] = json!(false);
            self.send(probe, "PUT", &path, Some(&body)).await
        };
        if let Err(error) = sent {
            return self.cannot_tell(probe, error);
        }
        let reads_inactive = match self.get(probe, "Users", &bravo.id).await {
            Ok(after) => after.body["active"] == json!(false),
            Err(error) => return self.cannot_tell(probe, error),
        };
        match self.listed(probe, bravo).await {
            Ok(still_listed) => {
                self.seen.after_deactivate = Some(AfterDeactivate {
                    reads_inactive,
                    still_listed,
                })
            }
            Err(error) => self.cannot_tell(probe, error),
        }
    }

    pub(super) async fn deletion(&mut self, bravo: &Person) {
        let probe = Probe::Deletion;
        let path = format!("/Users/{}", encode(&bravo.id));
        let delete_status = match self.send(probe, "DELETE", &path, None).await {
            Ok(reply) => reply.status,
            Err(error) => return self.cannot_tell(probe, error),
        };
        let get_status = match self.get(probe, "Users", &bravo.id).await {
            Ok(reply) => reply.status,
            Err(error) => return self.cannot_tell(probe, error),
        };
        if get_status == 404 {
            self.app.deleted("Users", &bravo.id);
        }
        match self.listed(probe, bravo).await {
            Ok(still_listed) => {
                self.seen.after_delete = Some(AfterDelete {
                    delete_status,
                    get_status,
                    still_listed,
                })
            }
            Err(error) => self.cannot_tell(probe, error),
        }
    }
}
