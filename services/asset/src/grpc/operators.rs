//! The asset service's operators: the registry's top level, whose identity and hotline are
//! public notice (REQ SVC-1).

use super::*;

impl AssetApi {
    pub(super) async fn create_operator_(
        &self,
        p: &Principal,
        req: pb::CreateOperatorRequest,
    ) -> Result<pb::CreateOperatorResponse, Error> {
        let input = req
            .operator
            .ok_or_else(|| Error::bad_field("operator", "must be set"))?;
        let now = self.clock.now();
        let op = rules::validate_operator(Operator {
            operator_id: String::new(),
            credit_code: input.credit_code,
            name: input.name,
            business_scope: input.business_scope,
            supervision_hotline: input.supervision_hotline,
            created_at: now,
            updated_at: now,
        })?;
        if !Self::can_write_operator(p, &op.operator_id) {
            return Err(Error::PermissionDenied(format!(
                "{p} cannot register operator {}; an operator registers itself with its own certificate",
                op.operator_id
            )));
        }
        let change = self.change(
            p,
            "operator",
            &op.operator_id,
            &op.operator_id,
            "create",
            "",
            None::<&Operator>,
            &op,
        );
        self.store
            .create_operator(&op, &change)
            .await
            .map_err(|e| exists_as(e, format!("operator {}", op.operator_id)))?;
        self.announce(&change).await;
        Ok(pb::CreateOperatorResponse {
            operator: Some(operator_to_pb(&op)),
        })
    }

    pub(super) async fn get_operator_(
        &self,
        p: &Principal,
        req: pb::GetOperatorRequest,
    ) -> Result<pb::GetOperatorResponse, Error> {
        let id = operator_of(p, &req.operator_id)?;
        let what = || format!("operator {id}");
        if !Self::can_see_operator(p, &id) {
            return Err(Error::NotFound(what()));
        }
        let op = self
            .store
            .operator(&id)
            .await?
            .ok_or_else(|| Error::NotFound(what()))?;
        Ok(pb::GetOperatorResponse {
            operator: Some(operator_to_pb(&op.value)),
        })
    }

    pub(super) async fn list_operators_(
        &self,
        p: &Principal,
        req: pb::ListOperatorsRequest,
    ) -> Result<pb::ListOperatorsResponse, Error> {
        let page = page_from(&req.page_token, req.page_size)?;
        let filters = match p {
            Principal::Service { .. } | Principal::Regulator { .. } => vec![],
            _ if is_platform_admin(p) => vec![],
            _ => match p.operator_id() {
                Some(own) => vec![Filter::Eq("operator_id", own.to_owned())],
                None => return Ok(pb::ListOperatorsResponse::default()),
            },
        };
        let ops = self.store.list_operators(&filters, &page).await?;
        Ok(pb::ListOperatorsResponse {
            next_page_token: next_token(&ops, &page, |o| (&o.operator_id, &o.operator_id)),
            operators: ops.iter().map(operator_to_pb).collect(),
        })
    }

    pub(super) async fn update_operator_(
        &self,
        p: &Principal,
        req: pb::UpdateOperatorRequest,
    ) -> Result<pb::UpdateOperatorResponse, Error> {
        let input = req
            .operator
            .ok_or_else(|| Error::bad_field("operator", "must be set"))?;
        let paths = mask_paths(
            req.update_mask.as_ref(),
            &["name", "business_scope", "supervision_hotline"],
        )?;
        let id = operator_of(p, &input.operator_id)?;
        let what = || format!("operator {id}");
        if !Self::can_see_operator(p, &id) {
            return Err(Error::NotFound(what()));
        }
        if !Self::can_write_operator(p, &id) {
            return Err(Error::PermissionDenied(format!(
                "{} is read-only for {p}",
                what()
            )));
        }
        let current = self
            .store
            .operator(&id)
            .await?
            .ok_or_else(|| Error::NotFound(what()))?;
        let mut next = current.value.clone();
        for path in &paths {
            match path.as_str() {
                "name" => next.name = input.name.clone(),
                "business_scope" => next.business_scope = input.business_scope.clone(),
                _ => next.supervision_hotline = input.supervision_hotline.clone(),
            }
        }
        next.updated_at = self.clock.now();
        let next = rules::validate_operator(next)?;
        let change = self.change(
            p,
            "operator",
            &id,
            &id,
            "update",
            "",
            Some(&current.value),
            &next,
        );
        self.store
            .update_operator(&next, current.version, &change)
            .await?;
        self.announce(&change).await;
        Ok(pb::UpdateOperatorResponse {
            operator: Some(operator_to_pb(&next)),
        })
    }
}
