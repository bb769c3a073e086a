//! Name resolution that asks again when a name does not resolve.
//!
//! The payload binaries are static musl. musl's resolver sends each query
//! to every nameserver in `/etc/resolv.conf` at once and takes the first
//! answer. Podman (with netavark) writes aardvark-dns, which knows the
//! compose services, *and* the host's nameservers, which do not, into a
//! container's resolv.conf. So `http://native-tools:8083` sometimes "does
//! not resolve" in the ael container: the host's NXDOMAIN arrived first.
//! glibc asks the nameservers in order and Docker lists only its own, so
//! neither sees this; a loaded machine makes it common (2 of 12 runs of
//! the podman-compose test here, decision 0022).
//!
//! [`RetryingResolver`] asks getaddrinfo again, [`ATTEMPTS`] times in all,
//! backing off from [`FIRST_DELAY`]: the race costs milliseconds instead
//! of a failed tool call, and a name that really does not exist fails
//! about 0.14 s later than it would.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Lookups of one name before its failure is final.
pub const ATTEMPTS: u32 = 4;

/// The wait before the second lookup; it doubles for each further one.
pub const FIRST_DELAY: Duration = Duration::from_millis(20);

/// A [`reqwest`] resolver: the system's (getaddrinfo, on a blocking
/// thread, as reqwest's own), asked again when it fails or finds nothing.
///
/// ```
/// let client = reqwest::Client::builder()
///     .dns_resolver(resolve_retry::RetryingResolver)
///     .build();
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryingResolver;

impl Resolve for RetryingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = with_retries(
                || tokio::net::lookup_host((host.clone(), 0)),
                &host,
                ATTEMPTS,
                FIRST_DELAY,
            )
            .await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Runs `lookup` until it gives at least one address, at most `attempts`
/// times, sleeping `first_delay` before the second try and twice as long
/// before each further one; the last error when none did. `host` names the
/// lookup in the log.
pub async fn with_retries<F, Fut, I>(
    mut lookup: F,
    host: &str,
    attempts: u32,
    first_delay: Duration,
) -> io::Result<Vec<SocketAddr>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = io::Result<I>>,
    I: Iterator<Item = SocketAddr>,
{
    let mut delay = first_delay;
    let mut attempt = 1;
    loop {
        let error = match lookup().await {
            Ok(addrs) => {
                let addrs: Vec<SocketAddr> = addrs.collect();
                if !addrs.is_empty() {
                    return Ok(addrs);
                }
                io::Error::new(io::ErrorKind::NotFound, format!("{host}: no addresses"))
            }
            Err(e) => e,
        };
        if attempt >= attempts {
            return Err(error);
        }
        tracing::debug!(%host, attempt, %error, "name did not resolve; asking again");
        tokio::time::sleep(delay).await;
        delay = delay.saturating_mul(2);
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn addr() -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 89, 0, 2)), 0)
    }

    #[tokio::test]
    async fn a_name_that_fails_twice_resolves_on_the_third_lookup() {
        let calls = Cell::new(0);
        let got = with_retries(
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    if n < 3 {
                        Err(io::Error::other("Name does not resolve"))
                    } else {
                        Ok(vec![addr()].into_iter())
                    }
                }
            },
            "native-tools",
            ATTEMPTS,
            Duration::from_millis(1),
        )
        .await
        .unwrap();
        assert_eq!(got, [addr()]);
        assert_eq!(calls.get(), 3);
    }

    #[tokio::test]
    async fn a_name_that_never_resolves_fails_after_every_attempt_with_the_last_error() {
        let calls = Cell::new(0);
        let err = with_retries(
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    Err::<std::vec::IntoIter<SocketAddr>, _>(io::Error::other(format!("try {n}")))
                }
            },
            "nowhere",
            ATTEMPTS,
            Duration::from_millis(1),
        )
        .await
        .unwrap_err();
        assert_eq!(calls.get(), ATTEMPTS);
        assert_eq!(err.to_string(), format!("try {ATTEMPTS}"));
    }

    #[tokio::test]
    async fn an_empty_answer_counts_as_a_failure() {
        let calls = Cell::new(0);
        let err = with_retries(
            || {
                calls.set(calls.get() + 1);
                async { Ok(Vec::<SocketAddr>::new().into_iter()) }
            },
            "empty",
            2,
            Duration::from_millis(1),
        )
        .await
        .unwrap_err();
        assert_eq!(calls.get(), 2);
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn the_resolver_finds_localhost_through_the_system() {
        let name: Name = "localhost".parse().unwrap();
        let addrs: Vec<SocketAddr> = RetryingResolver.resolve(name).await.unwrap().collect();
        assert!(
            addrs.iter().any(|a| a.ip().is_loopback()),
            "localhost gave {addrs:?}"
        );
    }
}
