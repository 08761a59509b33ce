//! The envelope (protocols.md §1.1): a request `{OperatorID, Data, TimeStamp, Seq, Sig}` signed
//! over `OperatorID + Data + TimeStamp + Seq`; a response `{Ret, Msg, Data, Sig}` signed over
//! `Ret + Msg + Data`. Opening one checks its form, then its signature, and only then decrypts.

use serde::{Deserialize, Serialize};

use crate::{CecError, Ret, Secrets, parse_timestamp};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    #[serde(rename = "OperatorID")]
    pub operator_id: String,
    #[serde(rename = "Data")]
    pub data: String,
    #[serde(rename = "TimeStamp")]
    pub time_stamp: String,
    #[serde(rename = "Seq")]
    pub seq: String,
    #[serde(rename = "Sig")]
    pub sig: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    #[serde(rename = "Ret")]
    pub ret: i32,
    #[serde(rename = "Msg", default)]
    pub msg: String,
    #[serde(rename = "Data", default)]
    pub data: String,
    #[serde(rename = "Sig", default)]
    pub sig: String,
}

/// The fields of a request, as text, whatever JSON type the peer used for them.
fn text_field(
    body: &serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<String, CecError> {
    match body.get(name) {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
        _ => Err(CecError::BadEnvelope(format!("{name} is missing"))),
    }
}

impl Request {
    /// Seals a payload: encrypts it, stamps it and signs it.
    pub fn seal(
        secrets: &Secrets,
        operator_id: &str,
        payload: &[u8],
        time_stamp: &str,
        seq: u16,
    ) -> Self {
        let data = secrets.encrypt(payload);
        let seq = format!("{:04}", seq.clamp(1, 9999));
        let sig = secrets.sign(&[operator_id, &data, time_stamp, &seq]);
        Self {
            operator_id: operator_id.to_owned(),
            data,
            time_stamp: time_stamp.to_owned(),
            seq,
            sig,
        }
    }

    /// Reads a request body: every field present and of its form (4003 otherwise).
    pub fn parse(body: &[u8]) -> Result<Self, CecError> {
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|_| CecError::BadEnvelope("the body is not JSON".into()))?;
        let object = value
            .as_object()
            .ok_or_else(|| CecError::BadEnvelope("the body is not a JSON object".into()))?;
        let request = Self {
            operator_id: text_field(object, "OperatorID")?,
            data: text_field(object, "Data")?,
            time_stamp: text_field(object, "TimeStamp")?,
            seq: text_field(object, "Seq")?,
            sig: text_field(object, "Sig")?,
        };
        if parse_timestamp(&request.time_stamp).is_none() {
            return Err(CecError::BadEnvelope("TimeStamp is yyyyMMddHHmmss".into()));
        }
        if request.seq.len() != 4
            || !request.seq.bytes().all(|b| b.is_ascii_digit())
            || request.seq == "0000"
        {
            return Err(CecError::BadEnvelope(
                "Seq is four digits, 0001 to 9999".into(),
            ));
        }
        Ok(request)
    }

    /// Whether the signature is the sender's (4001 otherwise). Nothing is decrypted before.
    pub fn verify(&self, secrets: &Secrets) -> Result<(), CecError> {
        if secrets.verify(
            &[&self.operator_id, &self.data, &self.time_stamp, &self.seq],
            &self.sig,
        ) {
            Ok(())
        } else {
            Err(CecError::BadSignature)
        }
    }

    /// The payload, once the signature checks.
    pub fn open(&self, secrets: &Secrets) -> Result<Vec<u8>, CecError> {
        self.verify(secrets)?;
        secrets.decrypt(&self.data)
    }
}

impl Response {
    /// Seals an answer; `payload` empty gives an empty `Data`.
    pub fn seal(secrets: &Secrets, ret: Ret, msg: &str, payload: Option<&[u8]>) -> Self {
        let data = payload.map(|p| secrets.encrypt(p)).unwrap_or_default();
        let code = ret.code().to_string();
        let sig = secrets.sign(&[&code, msg, &data]);
        Self {
            ret: ret.code(),
            msg: msg.to_owned(),
            data,
            sig,
        }
    }

    /// The standard's answer for a failure, with its message.
    pub fn failure(secrets: &Secrets, error: &CecError) -> Self {
        let ret = error.ret();
        Self::seal(secrets, ret, ret.message(), None)
    }

    /// The code and payload, once the signature checks.
    pub fn open(&self, secrets: &Secrets) -> Result<(Ret, Vec<u8>), CecError> {
        let code = self.ret.to_string();
        if !secrets.verify(&[&code, &self.msg, &self.data], &self.sig) {
            return Err(CecError::BadSignature);
        }
        let payload = if self.data.is_empty() {
            Vec::new()
        } else {
            secrets.decrypt(&self.data)?
        };
        Ok((Ret::from_code(self.ret), payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secrets() -> Secrets {
        Secrets::new(
            "1234567890abcdef",
            "1234567890abcdef",
            "1234567890abcdef",
            "1234567890abcdef",
        )
        .expect("secrets")
    }

    #[test]
    fn vector_4_1_1_a_sealed_token_request_is_the_published_envelope() {
        let payload = b"{\"OperatorID\":\"123456789\",\n\"OperatorSecret\":\"1234567890abcdef\"}";
        let r = Request::seal(&secrets(), "123456789", payload, "20180120165755", 1);
        assert_eq!(r.sig, "D2D584A14F3F284445DF85D0E8C0697C");
        let body = serde_json::to_vec(&r).expect("json");
        let parsed = Request::parse(&body).expect("parsed");
        assert_eq!(parsed.open(&secrets()).expect("opened"), payload);
    }

    #[test]
    fn a_malformed_envelope_is_4003_and_a_bad_signature_4001_before_any_decryption() {
        for body in [
            &b"not json"[..],
            b"[]",
            b"{\"OperatorID\":\"123456789\",\"Data\":\"x\",\"TimeStamp\":\"20240101120000\",\"Seq\":\"0001\"}",
            b"{\"OperatorID\":\"123456789\",\"Data\":\"x\",\"TimeStamp\":\"2024-01-01\",\"Seq\":\"0001\",\"Sig\":\"AA\"}",
            b"{\"OperatorID\":\"123456789\",\"Data\":\"x\",\"TimeStamp\":\"20240101120000\",\"Seq\":\"1\",\"Sig\":\"AA\"}",
        ] {
            assert_eq!(Request::parse(body).map(|_| ()).map_err(|e| e.ret()), Err(Ret::BadEnvelope));
        }
        // Data that would not even decrypt, under a wrong signature: the signature is what fails.
        let forged = Request {
            operator_id: "123456789".into(),
            data: "!!not base64!!".into(),
            time_stamp: "20240101120000".into(),
            seq: "0001".into(),
            sig: "00000000000000000000000000000000".into(),
        };
        assert_eq!(forged.open(&secrets()), Err(CecError::BadSignature));
    }

    #[test]
    fn vector_4_2_error_response_signature() {
        let r = Response::seal(&secrets(), Ret::BadToken, "Token错误", None);
        assert_eq!(r.sig, "4DEBB0A4054B198749F284D77FB60359");
        assert_eq!(
            r.open(&secrets()).expect("opened"),
            (Ret::BadToken, Vec::new())
        );
        let ok = Response::seal(&secrets(), Ret::Ok, "", Some(b"{\"Status\":0}"));
        assert_eq!(
            (ok.data.as_str(), ok.sig.as_str()),
            (
                "9MVkuXXxCLW2u0cUb7YXOA==",
                "A865BF62B6233B86D336DE11D6D67B0B"
            )
        );
    }

    /// A JSON value of any shape, a few levels deep, with the envelope's and payloads' keys
    /// among the names so the decoder meets them with every kind of value.
    fn any_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number)),
            "\\PC{0,40}".prop_map(serde_json::Value::from),
            "[0-9]{14}".prop_map(serde_json::Value::from),
        ];
        let key = prop_oneof![
            Just("OperatorID".to_owned()),
            Just("Data".to_owned()),
            Just("TimeStamp".to_owned()),
            Just("Seq".to_owned()),
            Just("Sig".to_owned()),
            Just("Ret".to_owned()),
            Just("Msg".to_owned()),
            "\\PC{0,12}",
        ];
        leaf.prop_recursive(3, 32, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(key.clone(), inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// REQ NETSEC-1: whatever a client sends, the decoder answers with a code, never a panic.
        #[test]
        fn any_bytes_are_refused_or_read_and_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let s = secrets();
            if let Ok(request) = Request::parse(&body) {
                let _ = request.verify(&s);
                let _ = request.open(&s);
            }
            if let Ok(response) = serde_json::from_slice::<Response>(&body) {
                let _ = response.open(&s);
            }
        }

        #[test]
        fn any_json_is_refused_or_read_and_never_panics(value in any_json()) {
            let s = secrets();
            let body = serde_json::to_vec(&value).expect("json");
            if let Ok(request) = Request::parse(&body) {
                let _ = request.open(&s);
            }
            if let Ok(response) = serde_json::from_value::<Response>(value.clone()) {
                let _ = response.open(&s);
            }
            let mut payload = value;
            crate::Dialect::default().inbound(&mut payload);
            crate::Dialect::default().outbound(&mut payload);
        }

        /// A correctly signed envelope around any Data: decryption and what follows refuse what
        /// is not a payload, and never panic.
        #[test]
        fn any_data_under_a_good_signature_is_refused_or_read(
            data in prop_oneof!["[A-Za-z0-9+/=]{0,200}", "\\PC{0,200}"],
            stamp in "[0-9]{14}",
            seq in "[0-9]{4}",
        ) {
            let s = secrets();
            let mut request = Request::seal(&s, "123456789", b"{}", &stamp, 1);
            request.data = data;
            request.seq = seq;
            request.sig = s.sign(&[&request.operator_id, &request.data, &request.time_stamp, &request.seq]);
            let body = serde_json::to_vec(&request).expect("json");
            if let Ok(parsed) = Request::parse(&body)
                && let Ok(bytes) = parsed.open(&s)
            {
                let _ = serde_json::from_slice::<serde_json::Value>(&bytes);
            }
        }
    }

    proptest! {
        #[test]
        fn any_payload_round_trips_through_a_request_and_a_response(
            payload in proptest::collection::vec(any::<u8>(), 0..600),
            operator in "[0-9A-Z]{9}",
            seq in 1u16..=9999,
            msg in "\\PC{0,20}",
        ) {
            let s = secrets();
            let request = Request::seal(&s, &operator, &payload, "20260301080000", seq);
            let body = serde_json::to_vec(&request).expect("json");
            let parsed = Request::parse(&body).expect("parsed");
            prop_assert_eq!(parsed.open(&s).expect("opened"), payload.clone());
            let response = Response::seal(&s, Ret::Ok, &msg, Some(&payload));
            let back: Response = serde_json::from_slice(&serde_json::to_vec(&response).expect("json")).expect("parsed");
            prop_assert_eq!(back.open(&s).expect("opened"), (Ret::Ok, if payload.is_empty() { Vec::new() } else { payload.clone() }));
            // One flipped character of the signature is refused.
            let mut tampered = parsed.clone();
            let flip = if tampered.sig.starts_with('0') { "1" } else { "0" };
            tampered.sig.replace_range(0..1, flip);
            prop_assert_eq!(tampered.open(&s), Err(CecError::BadSignature));
        }
    }
}
