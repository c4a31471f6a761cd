//! Rules over a TLS conversation: the handshake's own are its codec's findings (record sizes, a
//! message that does not parse); what was decrypted is judged by the rules of the protocol it
//! carries, over its messages alone. After STARTTLS that protocol's conversation goes on without
//! a greeting, so it is judged as one joined in its middle.

use crate::proto::{Exchange, Finding};

use super::TlsMessage;

/// The carried protocol's conversation rules over the decrypted messages.
pub fn conversation_rules(conv: &[Exchange<'_>]) -> Vec<Finding> {
    let mut inner = None;
    let mut resumed = false;
    let mut carried = Vec::new();
    for x in conv {
        match x {
            Exchange::Message(_, m) => match TlsMessage::of(m) {
                Some(t) => {
                    inner = inner.or(t.inner);
                    resumed |= t.resumed;
                }
                None => carried.push(*x),
            },
            Exchange::Closed(_) => carried.push(*x),
            Exchange::Unframed(_) => {}
        }
    }
    let Some(p) = inner.and_then(crate::proto::find) else {
        return Vec::new();
    };
    if !carried.iter().any(|x| matches!(x, Exchange::Message(..))) {
        return Vec::new();
    }
    match resumed {
        true => p.conversation_rules_from_middle(&carried),
        false => p.conversation_rules(&carried),
    }
}
