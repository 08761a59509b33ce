//! T/CEC 102 (电动汽车充换电服务信息交换) interconnection: one codec for the envelope
//! (`OperatorID, Data, TimeStamp, Seq, Sig` out; `Ret, Msg, Data, Sig` back), its crypto
//! (AES-128-CBC with PKCS#7 and Base64 for `Data`; upper-case HMAC-MD5 signatures over the plain
//! concatenations, checked before anything is decrypted), its return codes, and the per-peer
//! dialects real platforms speak (`Sevice*`/`Service*`, `ElecMoney`/`ElectMoney`, the status push
//! as an object or an array, the CEC or Zhejiang equipment types). See
//! `design/protocols.md` §1 and the vectors of §4, which the tests pass.
//!
//! T/CEC 102 lives here whole: the codec, the connector-state codes ([`status`]), the mapping of
//! the registry to its payloads ([`map`]), the peer settings and HTTPS client that reporting
//! pushes with ([`client`]), a mock regulator for development ([`mock`]) and the HTTPS edge the
//! gateway serves ([`edge`]).

pub mod client;
pub mod crypto;
pub mod dialect;
pub mod edge;
pub mod envelope;
pub mod map;
pub mod mock;
pub mod peers;
pub mod status;
pub mod token;

pub use crypto::Secrets;
pub use dialect::Dialect;
pub use envelope::{Request, Response};

/// The `Ret` codes of T/CEC 102.4 (protocols.md §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ret {
    /// -1: busy, retry later.
    Busy,
    /// 0: success.
    Ok,
    /// 4001: the signature is wrong.
    BadSignature,
    /// 4002: the token is unknown or expired; fetch a new one and retry once.
    BadToken,
    /// 4003: the envelope lacks OperatorID, Sig, TimeStamp, Data or Seq, or they are malformed.
    BadEnvelope,
    /// 4004: the business payload is invalid.
    BadPayload,
    /// 500: system error.
    SystemError,
    /// A code a peer added.
    Other(i32),
}

impl Ret {
    pub fn code(self) -> i32 {
        match self {
            Ret::Busy => -1,
            Ret::Ok => 0,
            Ret::BadSignature => 4001,
            Ret::BadToken => 4002,
            Ret::BadEnvelope => 4003,
            Ret::BadPayload => 4004,
            Ret::SystemError => 500,
            Ret::Other(code) => code,
        }
    }

    pub fn from_code(code: i32) -> Self {
        match code {
            -1 => Ret::Busy,
            0 => Ret::Ok,
            4001 => Ret::BadSignature,
            4002 => Ret::BadToken,
            4003 => Ret::BadEnvelope,
            4004 => Ret::BadPayload,
            500 => Ret::SystemError,
            other => Ret::Other(other),
        }
    }

    /// The message the standard gives the code.
    pub fn message(self) -> &'static str {
        match self {
            Ret::Busy => "系统繁忙，请求方稍后重试",
            Ret::Ok => "请求成功",
            Ret::BadSignature => "签名错误",
            Ret::BadToken => "Token错误",
            Ret::BadEnvelope => "POST参数不合法，缺少必需的OperatorID、Sig、TimeStamp、Data、Seq",
            Ret::BadPayload => "请求的业务参数不合法",
            Ret::SystemError => "系统错误",
            Ret::Other(_) => "",
        }
    }
}

/// Why an exchange failed, with the `Ret` it answers to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CecError {
    #[error("malformed envelope: {0}")]
    BadEnvelope(String),
    #[error("signature does not match")]
    BadSignature,
    #[error("token unknown or expired")]
    BadToken,
    #[error("invalid payload: {0}")]
    BadPayload(String),
    #[error("invalid secret: {0}")]
    BadSecret(String),
    #[error("peer {peer}: {problem}")]
    BadPeer { peer: String, problem: String },
}

impl CecError {
    pub fn ret(&self) -> Ret {
        match self {
            CecError::BadEnvelope(_) => Ret::BadEnvelope,
            CecError::BadSignature => Ret::BadSignature,
            CecError::BadToken => Ret::BadToken,
            CecError::BadPayload(_) => Ret::BadPayload,
            CecError::BadSecret(_) | CecError::BadPeer { .. } => Ret::SystemError,
        }
    }
}

/// `TimeStamp` as the envelope writes it: `yyyyMMddHHmmss` in China time (UTC+8).
pub fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.with_timezone(&china())
        .format("%Y%m%d%H%M%S")
        .to_string()
}

/// A `TimeStamp` read back; `None` when it is not `yyyyMMddHHmmss`.
pub fn parse_timestamp(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if text.len() != 14 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y%m%d%H%M%S")
        .ok()?
        .and_local_timezone(china())
        .single()
        .map(|t| t.to_utc())
}

/// Times inside payloads: `yyyy-MM-dd HH:mm:ss` in China time.
pub fn payload_time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.with_timezone(&china())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A payload time read back.
pub fn parse_payload_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M:%S")
        .ok()?
        .and_local_timezone(china())
        .single()
        .map(|t| t.to_utc())
}

fn china() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(8 * 3600)
        .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("utc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_china_time_to_the_second() {
        let at = parse_timestamp("20180120165755").expect("parsed");
        assert_eq!(at.to_rfc3339(), "2018-01-20T08:57:55+00:00");
        assert_eq!(timestamp(at), "20180120165755");
        assert!(parse_timestamp("2018012016575").is_none());
        assert!(parse_timestamp("2018-01-20 16:5").is_none());
        assert_eq!(payload_time(at), "2018-01-20 16:57:55");
        assert_eq!(parse_payload_time("2018-01-20 16:57:55"), Some(at));
    }

    #[test]
    fn ret_codes_round_trip() {
        for code in [-1, 0, 4001, 4002, 4003, 4004, 500, 4005] {
            assert_eq!(Ret::from_code(code).code(), code);
        }
    }
}
