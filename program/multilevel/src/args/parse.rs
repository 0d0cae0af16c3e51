//! The parsers of addresses and durations (sizes are `multilevel_store::parse_size`'s, as in
//! `multilevel-blocking-server`).

use std::time::Duration;

/// Checks a TCP address: `HOST:PORT`, with a port number; IPv6 hosts in brackets (`[::1]:7481`).
/// The host is looked up when connecting or listening.
pub(crate) fn parse_addr(text: &str) -> Result<String, String> {
    let malformed = || format!("`{text}` is not an address: expected HOST:PORT, e.g. 127.0.0.1:7481 or [::1]:7481");
    let (host, port) = text.rsplit_once(':').ok_or_else(malformed)?;
    let bare_ipv6 = host.contains(':') && !(host.starts_with('[') && host.ends_with(']'));
    if host.is_empty() || host == "[]" || bare_ipv6 || host.contains(char::is_whitespace) {
        return Err(malformed());
    }
    port.parse::<u16>().map_err(|_| malformed())?;
    Ok(text.to_owned())
}

/// Parses a duration with `humantime`: `10s`, `500ms`, `2m`, `1h30m`, `1day`; a bare number is
/// seconds (`10`, `0.5`). Zero is refused.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let duration = match text.parse::<f64>() {
        Ok(seconds) => Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is out of range"))?,
        Err(_) => humantime::parse_duration(text)
            .map_err(|err| format!("`{text}` is not a duration ({err}): expected e.g. 10s, 500ms, 1h30m"))?,
    };
    if duration.is_zero() {
        return Err("the duration must be more than zero".into());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h 30m 5s"), Ok(Duration::from_secs(5405)));
        assert_eq!(parse_duration("3d"), Ok(Duration::from_secs(3 * 86400)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("10 parsecs").is_err());
    }

    #[test]
    fn addresses() {
        for good in ["127.0.0.1:7481", "localhost:0", "[::1]:7481", "db.example.com:65535"] {
            assert_eq!(parse_addr(good), Ok(good.to_owned()));
        }
        for bad in ["nonsense", "127.0.0.1", ":7481", "host:", "host:65536", "host:port", "::1:7481", "a b:1"] {
            assert!(parse_addr(bad).is_err(), "{bad} was accepted");
        }
    }
}
