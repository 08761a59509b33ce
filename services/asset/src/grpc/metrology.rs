//! The asset service's metrology certificates and settlement eligibility (REQ BASE-5).

use super::*;

impl AssetApi {
    pub(super) async fn create_certificate_(
        &self,
        p: &Principal,
        req: pb::CreateMetrologyCertificateRequest,
    ) -> Result<pb::CreateMetrologyCertificateResponse, Error> {
        let input = req
            .certificate
            .ok_or_else(|| Error::bad_field("certificate", "must be set"))?;
        let op = operator_of(p, &input.operator_id)?;
        let (pile, _) = self
            .load_pile(p, &op, input.pile_id.trim(), Access::Write)
            .await?;
        let now = self.clock.now();
        let cert = rules::validate_certificate(
            Certificate {
                operator_id: op.clone(),
                pile_id: pile.value.pile_id.clone(),
                certificate_id: uuid::Uuid::now_v7().to_string(),
                procedure: procedure("certificate.procedure", input.procedure)?,
                certificate_number: input.certificate_number,
                verifying_body: input.verifying_body,
                verified_on: parse_date("certificate.verified_on", &input.verified_on)?,
                valid_until: parse_date("certificate.valid_until", &input.valid_until)?,
                created_at: now,
            },
            &pile.value,
            china_date(now),
        )?;
        let stored = StationCertificate {
            station_id: pile.value.station_id.clone(),
            certificate: cert.clone(),
        };
        let change = self.change(
            p,
            "certificate",
            &op,
            &cert.certificate_id,
            "create",
            "",
            None::<&Certificate>,
            &cert,
        );
        self.store
            .create_certificate(&stored, &change)
            .await
            .map_err(|e| {
                exists_as(
                    e,
                    format!(
                        "certificate {} of {}",
                        cert.certificate_number, cert.verifying_body
                    ),
                )
            })?;
        self.announce(&change).await;
        Ok(pb::CreateMetrologyCertificateResponse {
            certificate: Some(certificate_to_pb(&cert)),
        })
    }

    pub(super) async fn pile_certificates(&self, pile: &Pile) -> Result<Vec<Certificate>, Error> {
        let filters = [
            Filter::Eq("operator_id", pile.operator_id.clone()),
            Filter::Eq("pile_id", pile.pile_id.clone()),
        ];
        let mut certs = self.store.list_certificates(&filters).await?;
        certs.sort_by(|a, b| {
            b.verified_on
                .cmp(&a.verified_on)
                .then(b.created_at.cmp(&a.created_at))
        });
        Ok(certs)
    }

    pub(super) async fn list_certificates_(
        &self,
        p: &Principal,
        req: pb::ListMetrologyCertificatesRequest,
    ) -> Result<pb::ListMetrologyCertificatesResponse, Error> {
        let op = operator_of(p, &req.operator_id)?;
        let (pile, _) = self
            .load_pile(p, &op, req.pile_id.trim(), Access::Read)
            .await?;
        let certs = self.pile_certificates(&pile.value).await?;
        Ok(pb::ListMetrologyCertificatesResponse {
            certificates: certs.iter().map(certificate_to_pb).collect(),
        })
    }

    pub(super) async fn eligibility_(
        &self,
        p: &Principal,
        req: pb::CheckSettlementEligibilityRequest,
    ) -> Result<pb::CheckSettlementEligibilityResponse, Error> {
        let op = operator_of(p, &req.operator_id)?;
        let at = match &req.time {
            Some(ts) => from_timestamp(ts)
                .ok_or_else(|| Error::bad_field("time", "is not a valid timestamp"))?,
            None => self.clock.now(),
        };
        let (pile, _) = self
            .load_pile(p, &op, req.pile_id.trim(), Access::Read)
            .await?;
        let certs = self.pile_certificates(&pile.value).await?;
        let e = rules::settlement_eligibility(&pile.value, &certs, at);
        Ok(pb::CheckSettlementEligibilityResponse {
            eligible: e.eligible,
            reason: e.reason,
            certificate: e.certificate.as_ref().map(certificate_to_pb),
        })
    }
}
