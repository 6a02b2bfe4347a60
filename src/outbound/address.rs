//! Where a webhook may go, after DNS: every address a host name resolves to must be public
//! (unless private addresses are allowed), checked when a profile is saved and again when each
//! attempt connects, so that a name that resolves privately today is refused today.

use std::net::SocketAddr;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use crate::domain::public_address::is_public;

/// The name does not resolve, or resolves to an address that is not public.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    /// DNS has no address for it.
    #[error("does not resolve")]
    Unresolved,
    /// One of its addresses is loopback, private or otherwise not public.
    #[error("resolves to a loopback, private or otherwise non-public address")]
    NotPublic,
}

/// The addresses `host` resolves to, all of them public unless `allow_private`.
pub async fn resolve(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, AddressError> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| AddressError::Unresolved)?
        .collect();
    if addresses.is_empty() {
        return Err(AddressError::Unresolved);
    }
    // One private address is enough to refuse: the client could pick it.
    if !allow_private && addresses.iter().any(|a| !is_public(a.ip())) {
        return Err(AddressError::NotPublic);
    }
    Ok(addresses)
}

/// Checks a profile URL's host name by resolving it (an address literal was checked already).
pub async fn check_url_host(url: &Url, allow_private: bool) -> Result<(), AddressError> {
    match url.host() {
        Some(Host::Domain(name)) => {
            let port = url.port_or_known_default().unwrap_or(443);
            resolve(name, port, allow_private).await.map(|_| ())
        }
        _ => Ok(()),
    }
}

/// The delivery client's resolver: refuses a name with any non-public address, at connect
/// time, so the check and the connection use the same answer.
#[derive(Clone, Copy, Debug)]
pub struct PublicOnly {
    /// Whether private addresses are allowed after all (development).
    pub allow_private: bool,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addresses = resolve(name.as_str(), 0, allow_private).await?;
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}
