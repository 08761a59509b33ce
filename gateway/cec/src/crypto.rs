//! The crypto of T/CEC 102.4 (protocols.md §1.3): `Data` is Base64 of AES-128-CBC with PKCS#7
//! under `DataSecret` and the fixed `DataSecretIV`; a signature is the upper-case hex HMAC-MD5
//! under `SigSecret` of the fields concatenated. The secrets are 16-character strings used as
//! their raw bytes.

use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};

use crate::CecError;

type Encryptor = cbc::Encryptor<aes::Aes128>;
type Decryptor = cbc::Decryptor<aes::Aes128>;
type HmacMd5 = Hmac<md5::Md5>;

/// The four secrets of one direction of a peer link.
#[derive(Clone, PartialEq, Eq)]
pub struct Secrets {
    /// Proves the caller in `query_token` only.
    pub operator_secret: String,
    data_key: [u8; 16],
    data_iv: [u8; 16],
    sig_key: Vec<u8>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

fn sixteen(name: &str, value: &str) -> Result<[u8; 16], CecError> {
    value
        .as_bytes()
        .try_into()
        .map_err(|_| CecError::BadSecret(format!("{name} is 16 characters")))
}

impl Secrets {
    pub fn new(
        operator_secret: &str,
        data_secret: &str,
        data_iv: &str,
        sig_secret: &str,
    ) -> Result<Self, CecError> {
        sixteen("OperatorSecret", operator_secret)?;
        Ok(Self {
            operator_secret: operator_secret.to_owned(),
            data_key: sixteen("DataSecret", data_secret)?,
            data_iv: sixteen("DataSecretIV", data_iv)?,
            sig_key: sixteen("SigSecret", sig_secret)?.to_vec(),
        })
    }

    /// `Data` for a plaintext.
    pub fn encrypt(&self, plaintext: &[u8]) -> String {
        let ciphertext = Encryptor::new(&self.data_key.into(), &self.data_iv.into())
            .encrypt_padded_vec::<Pkcs7>(plaintext);
        STANDARD.encode(ciphertext)
    }

    /// The plaintext of `Data`.
    pub fn decrypt(&self, data: &str) -> Result<Vec<u8>, CecError> {
        let ciphertext = STANDARD
            .decode(data.trim())
            .map_err(|_| CecError::BadPayload("Data is not Base64".into()))?;
        Decryptor::new(&self.data_key.into(), &self.data_iv.into())
            .decrypt_padded_vec::<Pkcs7>(&ciphertext)
            .map_err(|_| CecError::BadPayload("Data does not decrypt".into()))
    }

    fn mac(&self, parts: &[&str]) -> HmacMd5 {
        // HMAC takes a key of any length; the secret was checked to be 16 bytes.
        let mut mac = <HmacMd5 as KeyInit>::new_from_slice(&self.sig_key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        for part in parts {
            mac.update(part.as_bytes());
        }
        mac
    }

    /// The signature of the fields, upper-case hex.
    pub fn sign(&self, parts: &[&str]) -> String {
        let tag = self.mac(parts).finalize().into_bytes();
        tag.iter().map(|b| format!("{b:02X}")).collect()
    }

    /// Whether `sig` (either hex case) signs the fields; compared in constant time.
    pub fn verify(&self, parts: &[&str], sig: &str) -> bool {
        let Some(bytes) = hex(sig.trim()) else {
            return false;
        };
        self.mac(parts).verify_slice(&bytes).is_ok()
    }
}

/// Bytes from hex of either case; `None` when it is not hex.
pub(crate) fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn published() -> Secrets {
        Secrets::new(
            "1234567890abcdef",
            "1234567890abcdef",
            "1234567890abcdef",
            "1234567890abcdef",
        )
        .expect("secrets")
    }

    #[test]
    fn secrets_are_sixteen_characters() {
        assert!(
            Secrets::new(
                "short",
                "1234567890abcdef",
                "1234567890abcdef",
                "1234567890abcdef"
            )
            .is_err()
        );
        assert!(
            Secrets::new(
                "1234567890abcdef",
                "1234567890abcdef",
                "1234567890abcdef",
                "1234567890abcdefg"
            )
            .is_err()
        );
    }

    #[test]
    fn vector_4_1_1_the_query_token_request() {
        let s = published();
        let data = "mYvffpNoFf4E/ZTC1tOw41TC5OlkEobfAYCm5N8hEusaLUaUIqOrXtdbMrSck0DSmfM7mRuOGMoCQzH0nWPGuw==";
        let plain = s.decrypt(data).expect("decrypts");
        assert_eq!(
            String::from_utf8(plain.clone()).expect("utf-8"),
            "{\"OperatorID\":\"123456789\",\n\"OperatorSecret\":\"1234567890abcdef\"}"
        );
        assert_eq!(s.encrypt(&plain), data);
        let sig = s.sign(&["123456789", data, "20180120165755", "0001"]);
        assert_eq!(sig, "D2D584A14F3F284445DF85D0E8C0697C");
        assert!(s.verify(
            &["123456789", data, "20180120165755", "0001"],
            &sig.to_lowercase()
        ));
        assert!(!s.verify(&["123456789", data, "20180120165755", "0002"], &sig));
    }

    #[test]
    fn vector_4_1_2_the_query_token_response() {
        let s = published();
        let data = "uxeKP0ezR5yL8xSg4/ZCDh/N91/u86NXFxd2DrwZVW8zCPYcpl59Twz/yQZ3RaO4rDDrGmkvQignmNEJ+k4PGxdmIC+4fpJ8rU6osSobY+AeA0uueuQ5+eQiWBL6p6v5XMMm91brtK8yfFELYUWQzVcxABnAwK/+dyxtUhqLIxUpkwTEU/4ktN40df9IzzlLO5uvUknPGYu9yL0pp5w9vdRxmA1RiiTDNCysz6klr9bunGV3VJa2qpLcgeZMf/oG";
        assert_eq!(s.sign(&["0", "", data]), "58E52010C7DEE87FE183B0AFA5B2BE30");
        let plain = String::from_utf8(s.decrypt(data).expect("decrypts")).expect("utf-8");
        let json: serde_json::Value = serde_json::from_str(&plain).expect("json");
        assert_eq!(json["SuccStat"], 0);
        assert_eq!(json["TokenAvailableTime"], 7200);
        assert_eq!(
            json["AccessToken"],
            "kVnStIRknCCOBdXgJrmu8rb3pcccifKW2NcQrysKKIzb7iQBxkkjeq3WoGdjgrIL"
        );
    }

    #[test]
    fn vector_4_2_status_query_and_answers() {
        let s = published();
        let cases = [
            (
                "{\"ConnectorStatusInfo\":{\"ConnectorID\":\"3301020000000000000000001\",\"Status\":1}}",
                "0001",
                "Bq+0LsmzLSCEoMjxBr7JEZiqs8Goy0eNs0xUSBu5loS+41wurP91Q1P5tzavqi0KI77Nx2zlcUfMKvP1rPrz6XpKJxrguwYLUqQccGVJyes=",
                "BEDC8DA7937018686BD55F1612034A9A",
            ),
            (
                "{\"StationIDs\":[\"330102000000001\"]}",
                "0002",
                "RP/Z26h/ejO0ORlAz93dNeTzuCwiFDWkhwohNUdZ/u5aHVFkkREU9jGAuEGOaWb1",
                "0D8EE865062AF4036304A4BBF764BC96",
            ),
        ];
        for (plain, seq, data, sig) in cases {
            assert_eq!(s.encrypt(plain.as_bytes()), data);
            assert_eq!(s.sign(&["123456789", data, "20240101120000", seq]), sig);
        }
        assert_eq!(s.encrypt(b"{\"Status\":0}"), "9MVkuXXxCLW2u0cUb7YXOA==");
        assert_eq!(
            s.sign(&["0", "", "9MVkuXXxCLW2u0cUb7YXOA=="]),
            "A865BF62B6233B86D336DE11D6D67B0B"
        );
        assert_eq!(
            s.sign(&["4002", "Token错误", ""]),
            "4DEBB0A4054B198749F284D77FB60359"
        );
    }
}
