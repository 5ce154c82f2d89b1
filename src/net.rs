//! Where a connection goes: whether a host is this machine (loopback), and which proxy the
//! environment names for a URL.
//!
//! castsync sends credentials (the API key, a git token) in clear only to loopback: over plain
//! http, a request through a proxy on another host hands the proxy every header. So the
//! proxy is chosen here, once, and the HTTP client is told exactly that proxy — what castsync
//! checks is what it uses. The variables are read as curl and reqwest read them:
//! `HTTPS_PROXY`/`https_proxy` for https, `HTTP_PROXY`/`http_proxy` for http, then
//! `ALL_PROXY`/`all_proxy`; `NO_PROXY`/`no_proxy` lists hosts, domains (a suffix match),
//! addresses and networks (CIDR) reached directly, and `*` means every host — bare IP
//! addresses included, as in curl. Under CGI (`REQUEST_METHOD` set) the environment's
//! proxies are ignored, as reqwest does (the "httpoxy" attack).

use std::net::IpAddr;

use reqwest::Url;

/// True for `localhost`, `127.0.0.0/8`, `::1` and `::ffff:127.x.y.z`: a connection that never
/// leaves this machine.
pub fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => {
            bare.eq_ignore_ascii_case("localhost")
                || bare.to_ascii_lowercase().ends_with(".localhost")
        }
    }
}

/// The proxy the environment names for `target`, or None to connect directly. An empty or
/// unparseable variable counts as unset.
pub fn proxy_for(target: &Url) -> Option<Url> {
    proxy_with(target, |name| std::env::var(name).ok())
}

/// [`proxy_for`] over any environment (for tests).
pub fn proxy_with(target: &Url, env: impl Fn(&str) -> Option<String>) -> Option<Url> {
    if env("REQUEST_METHOD").is_some() {
        return None;
    }
    let first = |names: &[&str]| {
        names
            .iter()
            .filter_map(|n| env(n))
            .map(|v| v.trim().to_owned())
            .find(|v| !v.is_empty())
    };
    let no_proxy = first(&["NO_PROXY", "no_proxy"]).unwrap_or_default();
    if bypassed(target.host_str()?, &no_proxy) {
        return None;
    }
    let named = match target.scheme() {
        "https" => first(&["HTTPS_PROXY", "https_proxy"]),
        "http" => first(&["HTTP_PROXY", "http_proxy"]),
        _ => None,
    };
    let raw = named.or_else(|| first(&["ALL_PROXY", "all_proxy"]))?;
    // A proxy given as `host:port` means http, as curl reads it.
    let with_scheme = if raw.contains("://") {
        raw
    } else {
        format!("http://{raw}")
    };
    Url::parse(&with_scheme).ok().filter(|u| u.host().is_some())
}

/// True when `NO_PROXY` sends `host` directly.
fn bypassed(host: &str, no_proxy: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let address = host.parse::<IpAddr>().ok();
    no_proxy
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let entry = entry.trim_start_matches('[').trim_end_matches(']');
            match (address, entry.split_once('/')) {
                (Some(ip), Some((net, bits))) => in_network(ip, net, bits),
                (Some(ip), None) => entry.parse::<IpAddr>().is_ok_and(|e| e == ip),
                (None, _) => {
                    let domain = entry.trim_start_matches("*.").trim_start_matches('.');
                    let host = host.to_ascii_lowercase();
                    let domain = domain.to_ascii_lowercase();
                    host == domain || host.ends_with(&format!(".{domain}"))
                }
            }
        })
}

/// True when `ip` is inside `net/bits` (both of one family).
fn in_network(ip: IpAddr, net: &str, bits: &str) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    let prefix = |width: u32, a: u128, b: u128| {
        bits <= width && (bits == 0 || (a ^ b) >> (width - bits) == 0)
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => prefix(32, u32::from(a).into(), u32::from(b).into()),
        (IpAddr::V6(a), IpAddr::V6(b)) => prefix(128, u128::from(a), u128::from(b)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(target: &str, vars: &[(&str, &str)]) -> Option<String> {
        let target = Url::parse(target).unwrap();
        proxy_with(&target, |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
        .map(|u| u.to_string())
    }

    #[test]
    fn loopback_is_localhost_127_8_and_ipv6_one() {
        for host in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.9.9.9",
            "[::1]",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "192.0.2.1",
            "localhost.example.com",
            "[::2]",
            "10.0.0.1",
            "example.com",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn the_proxy_follows_the_scheme_then_all_proxy() {
        let vars = [
            ("HTTPS_PROXY", "http://secure:3128"),
            ("http_proxy", "plain:8080"),
            ("ALL_PROXY", "http://all:1"),
        ];
        assert_eq!(
            proxy("https://api/x", &vars).unwrap(),
            "http://secure:3128/"
        );
        assert_eq!(proxy("http://api/x", &vars).unwrap(), "http://plain:8080/");
        assert_eq!(
            proxy("http://api/x", &[("ALL_PROXY", "http://all:1")]).unwrap(),
            "http://all:1/"
        );
        assert_eq!(proxy("https://api/x", &[("HTTPS_PROXY", "  ")]), None);
        assert_eq!(proxy("https://api/x", &[]), None);
        assert_eq!(
            proxy(
                "https://api/x",
                &[("HTTPS_PROXY", "http://p:1"), ("REQUEST_METHOD", "GET")]
            ),
            None
        );
    }

    #[test]
    fn no_proxy_star_covers_names_and_bare_addresses() {
        let proxied = |target: &str, no: &str| {
            proxy(target, &[("HTTPS_PROXY", "http://p:1"), ("NO_PROXY", no)]).is_some()
        };
        for target in [
            "https://api.example.com",
            "https://10.1.2.3:8443",
            "https://[::1]:8443",
        ] {
            assert!(!proxied(target, "*"), "{target}");
            assert!(!proxied(target, "other, *"), "{target}");
            assert!(proxied(target, "other.example.org"), "{target}");
        }
        assert!(!proxied("https://api.example.com", "example.com"));
        assert!(!proxied("https://api.example.com", ".example.com"));
        assert!(proxied("https://notexample.com", "example.com"));
        assert!(!proxied("https://10.1.2.3", "10.0.0.0/8"));
        assert!(proxied("https://11.1.2.3", "10.0.0.0/8"));
        assert!(!proxied("https://10.1.2.3", "10.1.2.3"));
        assert!(!proxied("https://[::1]:8443", "::1"));
    }
}
