//! Groups and their members, and bulk.

use super::*;

impl Battery {
    /// PATCHes a group and reads its members back.
    pub(super) async fn patch_group(
        &mut self,
        probe: Probe,
        id: &str,
        operation: Value,
    ) -> Result<(u16, Vec<String>), String> {
        let path = format!("/Groups/{}", encode(id));
        let reply = self
            .send(probe, "PATCH", &path, Some(&Self::patch_body(operation)))
            .await?;
        let members = self.members(probe, id).await?;
        Ok((reply.status, members))
    }

    pub(super) async fn members(&mut self, probe: Probe, id: &str) -> Result<Vec<String>, String> {
        let after = self.get(probe, "Groups", id).await?;
        let mut members: Vec<String> = after.body["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["value"].as_str().map(str::to_owned))
            .collect();
        members.sort();
        members.dedup();
        Ok(members)
    }

    /// Adds those of `people` the group lacks (one at a time: no duplicate member), and
    /// reads its members back.
    pub(super) async fn fill(
        &mut self,
        probe: Probe,
        group: &str,
        people: &[&Person],
        member: &dyn Fn(&str) -> Value,
    ) -> Result<Vec<String>, String> {
        let mut members = self.members(probe, group).await?;
        for person in people {
            if !members.contains(&person.id) {
                let add = json!({"op": "add", "path": "members", "value": [member(&person.id)]});
                members = self.patch_group(probe, group, add).await?.1;
            }
        }
        Ok(members)
    }

    pub(super) async fn groups(&mut self, alpha: &Person, bravo: &Person) {
        let probes = [
            Probe::MemberType,
            Probe::MemberFilterPath,
            Probe::ValueArrayRemoval,
            Probe::EmptyMembersReplace,
        ];
        if self.seen.patch != Some(true) {
            for probe in probes {
                self.cannot_tell(probe, "PATCH is not applied");
            }
            return;
        }
        let group = match self.probe_group().await {
            Ok(id) => id,
            Err(error) => {
                for probe in probes {
                    self.cannot_tell(probe, error.clone());
                }
                return;
            }
        };
        let Some(typed) = self.member_type(&group, alpha).await else {
            return;
        };
        let member = |id: &str| match typed {
            true => json!({"value": id, "type": "User"}),
            false => json!({"value": id}),
        };
        self.member_filter_path(&group, alpha, bravo, &member).await;
        self.value_array_removal(&group, alpha, bravo, &member).await;
        self.empty_members_replace(&group, bravo, &member).await;
    }

    /// The probe's group, created empty: its id.
    async fn probe_group(&mut self) -> Result<String, String> {
        let name = format!("{} group", self.run);
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": name,
            "members": []
        });
        let created = match self.send(Probe::MemberType, "POST", "/Groups", Some(&body)).await {
            Ok(reply) if reply.ok() => match created_id(&reply) {
                Some(id) => Ok(id),
                None => self
                    .find(Probe::MemberType, "Groups", "displayName", &name)
                    .await
                    .and_then(|id| id.ok_or_else(|| "the group created cannot be found".to_owned())),
            },
            Ok(reply) => Err(format!("a group could not be created ({})", reply.status)),
            Err(error) => Err(error),
        };
        created.and_then(|id| self.app.created("Groups", &id, &name).map(|()| id))
    }

    /// A member without "type"; if refused, with it. Whether members need it, or `None` when
    /// no member could be added (the group probes cannot tell then).
    async fn member_type(&mut self, group: &str, alpha: &Person) -> Option<bool> {
        let probe = Probe::MemberType;
        let untyped = json!({"op": "add", "path": "members", "value": [{"value": alpha.id}]});
        match self.patch_group(probe, group, untyped).await {
            Ok((status, members)) if success(status) && members.contains(&alpha.id) => {
                self.seen.member_type_required = Some(false);
                return Some(false);
            }
            Ok(_) => {}
            Err(error) => {
                self.cannot_tell(probe, error);
                return None;
            }
        }
        let typed = json!({"op": "add", "path": "members", "value": [{"value": alpha.id, "type": "User"}]});
        match self.patch_group(probe, group, typed).await {
            Ok((status, members)) if success(status) && members.contains(&alpha.id) => {
                self.seen.member_type_required = Some(true);
                Some(true)
            }
            Ok(_) => {
                self.cannot_tell(probe, "no member could be added, with \"type\" or without");
                None
            }
            Err(error) => {
                self.cannot_tell(probe, error);
                None
            }
        }
    }

    /// remove members[value eq "bravo"]: bravo only.
    async fn member_filter_path(
        &mut self,
        group: &str,
        alpha: &Person,
        bravo: &Person,
        member: &dyn Fn(&str) -> Value,
    ) {
        let probe = Probe::MemberFilterPath;
        let both = both(alpha, bravo);
        match self.fill(probe, group, &[alpha, bravo], member).await {
            Ok(members) if members == both => {
                let filter = format!("members[value eq {}]", json!(bravo.id));
                match self
                    .patch_group(probe, group, json!({"op": "remove", "path": filter}))
                    .await
                {
                    Ok((status, members)) => {
                        self.seen.member_filter_path = Some(success(status) && members == [alpha.id.clone()])
                    }
                    Err(error) => self.cannot_tell(probe, error),
                }
            }
            Ok(_) => self.cannot_tell(probe, "a second member could not be added"),
            Err(error) => self.cannot_tell(probe, error),
        }
    }

    /// remove members with a value array.
    async fn value_array_removal(
        &mut self,
        group: &str,
        alpha: &Person,
        bravo: &Person,
        member: &dyn Fn(&str) -> Value,
    ) {
        let probe = Probe::ValueArrayRemoval;
        let both = both(alpha, bravo);
        match self.fill(probe, group, &[alpha, bravo], member).await {
            Ok(members) if members == both => {
                match self
                    .patch_group(
                        probe,
                        group,
                        json!({"op": "remove", "path": "members", "value": [{"value": bravo.id}]}),
                    )
                    .await
                {
                    Ok((status, _)) if !success(status) => self.seen.value_array_removal = Some(ArrayRemoval::Refused),
                    Ok((_, members)) if members.is_empty() => self.seen.value_array_removal = Some(ArrayRemoval::All),
                    Ok((_, members)) if members == [alpha.id.clone()] => {
                        self.seen.value_array_removal = Some(ArrayRemoval::OnlyNamed)
                    }
                    Ok((_, members)) if members == both => self.seen.value_array_removal = Some(ArrayRemoval::Nothing),
                    Ok(_) => self.cannot_tell(probe, "the members left are neither, one nor both"),
                    Err(error) => self.cannot_tell(probe, error),
                }
            }
            Ok(_) => self.cannot_tell(probe, "the group does not hold both probe users"),
            Err(error) => self.cannot_tell(probe, error),
        }
    }

    /// replace members [].
    async fn empty_members_replace(&mut self, group: &str, bravo: &Person, member: &dyn Fn(&str) -> Value) {
        let probe = Probe::EmptyMembersReplace;
        match self.fill(probe, group, &[bravo], member).await {
            Ok(members) if !members.is_empty() => {
                match self
                    .patch_group(probe, group, json!({"op": "replace", "path": "members", "value": []}))
                    .await
                {
                    Ok((status, members)) => {
                        self.seen.empty_members_replace = Some(success(status) && members.is_empty())
                    }
                    Err(error) => self.cannot_tell(probe, error),
                }
            }
            Ok(_) => self.cannot_tell(probe, "the group has no member to replace"),
            Err(error) => self.cannot_tell(probe, error),
        }
    }

    // === bulk ===

    pub(super) async fn bulk(&mut self) {
        let probe = Probe::Bulk;
        if self.seen.bulk_advertised.is_some_and(|b| !b.supported) {
            return;
        }
        let user = self.user("charlie");
        let body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [{"method": "POST", "path": "/Users", "bulkId": "probe", "data": user}]
        });
        match self.send(probe, "POST", "/Bulk", Some(&body)).await {
            Ok(reply) => {
                let operation = &reply.body["Operations"][0];
                let status = match &operation["status"] {
                    Value::String(s) => s.split_whitespace().next().and_then(|s| s.parse::<u16>().ok()),
                    Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                    Value::Object(o) => o.get("code").and_then(Value::as_str).and_then(|s| s.parse().ok()),
                    _ => None,
                };
                let created = reply.ok() && status.is_some_and(success);
                self.seen.bulk_works = Some(created);
                if created {
                    let id = operation["location"]
                        .as_str()
                        .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
                        .map(str::to_owned);
                    let name = self.user_name("charlie");
                    let id = match id {
                        Some(id) => Some(id),
                        None => self.find(probe, "Users", "userName", &name).await.ok().flatten(),
                    };
                    if let Some(id) = id {
                        let _ = self.app.created("Users", &id, &name);
                    }
                }
            }
            Err(error) => self.cannot_tell(probe, error),
        }
    }

    // === deprovisioning ===
}

/// Both probe users' ids, sorted as a group's members are compared.
fn both(alpha: &Person, bravo: &Person) -> Vec<String> {
    let mut both = vec![alpha.id.clone(), bravo.id.clone()];
    both.sort();
    both
}
