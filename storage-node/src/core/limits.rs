//! Bounds on what peers may have the node do at once. Every key may connect
//! and ask anything; each kind of request has a per-peer and a node-wide
//! limit on requests in flight, and a request over either is refused at
//! once as busy (prioritising work already accepted over new remote work),
//! before any of it is decoded or done.

use std::collections::HashMap;

use strand_contracts::AccountId;

/// What a peer asks the node over the control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Any request (decoding included).
    Request,
    /// A contract proposal (long: fetches fragments).
    Proposal,
    /// A staging request (long: fetches fragments).
    Stage,
    /// A credential presentation (Merkle checks).
    Presentation,
}

/// Requests in flight per kind: at most `per_peer` for one peer and `total`
/// for all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// For one peer.
    pub per_peer: u32,
    /// For the whole node.
    pub total: u32,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Self; 4] = [Self::Request, Self::Proposal, Self::Stage, Self::Presentation];

    /// The `kind` label of the busy-refusal metric.
    pub fn label(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Proposal => "proposal",
            Self::Stage => "stage",
            Self::Presentation => "presentation",
        }
    }

    /// The limit of this kind.
    pub fn limit(self) -> Limit {
        match self {
            // Undecoded requests: libp2p itself bounds streams per
            // connection; this bounds the tasks the node starts for them.
            Self::Request => Limit { per_peer: 16, total: 256 },
            Self::Proposal => Limit { per_peer: 4, total: 32 },
            // One owner stages at most four uploads here at once, each with
            // a couple of requests in flight.
            Self::Stage => Limit { per_peer: 8, total: 128 },
            Self::Presentation => Limit { per_peer: 4, total: 64 },
        }
    }
}

/// Requests in flight, by kind and peer.
#[derive(Debug, Default)]
pub struct InFlight {
    by_peer: HashMap<(Kind, AccountId), u32>,
    totals: HashMap<Kind, u32>,
}

impl InFlight {
    /// Starts a request of `kind` from `peer` if both limits allow;
    /// `false` means refuse it as busy. Every `true` must be matched by one
    /// [`InFlight::finish`].
    pub fn start(&mut self, kind: Kind, peer: AccountId) -> bool {
        let limit = kind.limit();
        let total = self.totals.get(&kind).copied().unwrap_or(0);
        let mine = self.by_peer.get(&(kind, peer)).copied().unwrap_or(0);
        if total >= limit.total || mine >= limit.per_peer {
            return false;
        }
        self.totals.insert(kind, total + 1);
        self.by_peer.insert((kind, peer), mine + 1);
        true
    }

    /// Ends a request [`InFlight::start`] let in.
    pub fn finish(&mut self, kind: Kind, peer: AccountId) {
        if let Some(total) = self.totals.get_mut(&kind) {
            *total = total.saturating_sub(1);
        }
        if let Some(mine) = self.by_peer.get_mut(&(kind, peer)) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                self.by_peer.remove(&(kind, peer));
            }
        }
    }

    /// Requests of `kind` in flight on the node.
    pub fn total(&self, kind: Kind) -> u32 {
        self.totals.get(&kind).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_peer_cannot_take_every_place_and_places_come_back() {
        let mut in_flight = InFlight::default();
        let flooder = AccountId([1; 32]);
        let limit = Kind::Proposal.limit();
        for _ in 0..limit.per_peer {
            assert!(in_flight.start(Kind::Proposal, flooder));
        }
        assert!(!in_flight.start(Kind::Proposal, flooder), "over its own limit");
        assert!(in_flight.start(Kind::Presentation, flooder), "other kinds have their own places");
        assert!(in_flight.start(Kind::Proposal, AccountId([2; 32])), "another peer still gets in");
        in_flight.finish(Kind::Proposal, flooder);
        assert!(in_flight.start(Kind::Proposal, flooder), "a finished request frees its place");
        // The node-wide limit holds across peers.
        let mut in_flight = InFlight::default();
        let mut admitted = 0;
        for peer in 0..=255u8 {
            for _ in 0..limit.per_peer {
                admitted += u32::from(in_flight.start(Kind::Proposal, AccountId([peer; 32])));
            }
        }
        assert_eq!(admitted, limit.total);
        assert_eq!(in_flight.total(Kind::Proposal), limit.total);
    }
}
