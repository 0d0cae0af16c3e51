use std::fmt::Debug;

use bytes::Bytes;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "json")]
use super::Json;
use super::{Postcard, TableCodec, TableError};
use crate::Entry;

/// Encoded keys sort as the keys do, and decode back to themselves.
fn order_holds<K>(a: K, b: K) -> Result<(), TestCaseError>
where
    K: storekey::Encode + storekey::Decode + Ord + Debug,
{
    let (ea, eb) = (TableCodec::<K, (), Postcard>::encode_key(&a)?, TableCodec::<K, (), Postcard>::encode_key(&b)?);
    prop_assert_eq!(ea.cmp(&eb), a.cmp(&b), "{:?} vs {:?}: {:?} vs {:?}", a, b, ea, eb);
    prop_assert_eq!(TableCodec::<K, (), Postcard>::decode_key(&ea)?, a);
    prop_assert_eq!(TableCodec::<K, (), Postcard>::decode_key(&eb)?, b);
    Ok(())
}

fn edge_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(0xfe), Just(0xff), any::<u8>()], 0..6)
}

proptest! {
    #[test]
    fn unsigned_order(a: u64, b: u64) { order_holds(a, b)?; }

    #[test]
    fn signed_order(a: i64, b: i64) { order_holds(a, b)?; }

    #[test]
    fn small_and_wide_integers(a: i8, b: i8, c: u128, d: u128, e: i32, f: i32) {
        order_holds(a, b)?;
        order_holds(c, d)?;
        order_holds(e, f)?;
    }

    #[test]
    fn string_order(a in "[a\\x00\\x01\\u{7f}\\u{e9}\\u{10000}z]{0,6}", b in "[a\\x00\\x01\\u{7f}\\u{e9}\\u{10000}z]{0,6}") {
        order_holds(a, b)?;
    }

    #[test]
    fn byte_string_order(a in edge_bytes(), b in edge_bytes()) { order_holds(a, b)?; }

    #[test]
    fn tuple_order(a in (any::<u32>(), "[ab\\x00]{0,3}", edge_bytes()), b in (any::<u32>(), "[ab\\x00]{0,3}", edge_bytes())) {
        order_holds(a, b)?;
    }

    #[test]
    fn tuples_with_a_shared_first_field(x: i16, s in "[ab\\x00]{0,3}", t in "[ab\\x00]{0,3}", p: bool, q: bool) {
        order_holds((x, s.clone(), p), (x, t, q))?;
        order_holds((s.clone(), x), (s, x.wrapping_add(1)))?;
    }

    #[test]
    fn option_order(a: Option<u16>, b: Option<u16>) { order_holds(a, b)?; }

    #[test]
    fn ranges_hold_exactly_their_keys(keys in proptest::collection::vec(any::<i32>(), 0..20), lo: i32, hi: i32) {
        let range = TableCodec::<i32, (), Postcard>::range(lo..=hi)?;
        for key in keys {
            let stored = TableCodec::<i32, (), Postcard>::encode_key(&key)?;
            prop_assert_eq!(range.contains(&stored), (lo..=hi).contains(&key));
        }
        let range = TableCodec::<i32, (), Postcard>::range(lo..)?;
        let stored = TableCodec::<i32, (), Postcard>::encode_key(&hi)?;
        prop_assert_eq!(range.contains(&stored), hi >= lo);
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    age: u8,
}

#[test]
fn values_round_trip() {
    let user = User { name: "ada".into(), age: 36 };
    let stored = TableCodec::<u32, User, Postcard>::encode_value(&user).unwrap();
    assert_eq!(TableCodec::<u32, User, Postcard>::decode_value(None, &stored).unwrap(), user);
}

#[cfg(feature = "json")]
#[test]
fn json_values_are_text() {
    let user = User { name: "ada".into(), age: 36 };
    let stored = TableCodec::<u32, User, Json>::encode_value(&user).unwrap();
    assert_eq!(&stored[..], br#"{"name":"ada","age":36}"#);
    assert_eq!(TableCodec::<u32, User, Json>::decode_value(None, &stored).unwrap(), user);
}

#[test]
fn entries_that_do_not_decode_are_errors_naming_the_entry() {
    type Users = TableCodec<u32, User, Postcard>;
    let key = Users::encode_key(&7).unwrap();
    let bad_value = Entry { key: key.clone(), value: Bytes::from_static(b"") };
    match Users::pair(bad_value) {
        Err(TableError::DecodeValue { key: Some(at), codec: "postcard", .. }) => assert_eq!(at, key),
        other => panic!("{other:?}"),
    }
    let bad_key = Entry { key: Bytes::from_static(b"\x01"), value: Bytes::new() };
    let err = Users::key(bad_key).unwrap_err();
    assert!(matches!(err, TableError::DecodeKey { .. }), "{err:?}");
    assert!(err.to_string().contains("is not a u32"), "{err}");
    // A key with bytes after an encoded u32 is not a u32 either.
    let mut long = key.to_vec();
    long.push(0);
    assert!(Users::decode_key(&Bytes::from(long)).is_err());
}
