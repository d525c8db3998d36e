//! Person, proxy or bot: the event's `agent`.
//!
//! For now the method alone decides: a HEAD request is a machine checking a
//! link or image, never a person looking at it. The richer rules (known
//! User-Agents, source networks, time since sending) plug in here.

use crate::event::{Agent, AgentKind};

/// The agent of a request made with `method`.
pub fn classify(method: &http::Method) -> Agent {
    if method == http::Method::HEAD {
        return Agent {
            kind: AgentKind::Bot,
            name: None,
            reason: Some("method"),
        };
    }
    Agent {
        kind: AgentKind::Human,
        name: None,
        reason: None,
    }
}
