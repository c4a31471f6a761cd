//! What a command gets back: the tagged reply, the text of a store failure, and the
//! capabilities the greeting, CAPABILITY and LOGIN announce. Shared by the session, the
//! message commands (`fetch.rs`) and the connection loop (`mod.rs`).

/// What CAPABILITY, the greeting and LOGIN's OK announce, whatever the TLS.
pub(super) const CAPABILITIES: &str = "IMAP4rev1 IMAP4rev2 LITERAL+ UNSELECT";

/// `CAPABILITIES` with STARTTLS while it is offered and LOGINDISABLED while LOGIN is refused.
pub(super) fn capabilities(starttls: bool, login_disabled: bool) -> String {
    let mut all = CAPABILITIES.to_owned();
    if starttls {
        all.push_str(" STARTTLS");
    }
    if login_disabled {
        all.push_str(" LOGINDISABLED");
    }
    all
}

/// The tagged response to a command (or, for `Bye`, the end of the session).
#[derive(Debug)]
pub(super) enum Reply {
    /// `tag OK text`
    Ok(String),
    /// `tag NO text`
    No(String),
    /// `tag BAD text`
    Bad(String),
    /// `* BYE text`, then `tag OK text2` if the second text is given, then close.
    Bye(String, Option<String>),
    /// `tag OK text`, then the TLS handshake (STARTTLS).
    StartTls(String),
}

/// The text of a NO for a failure of the store itself.
pub(super) fn server_bug(error: &std::io::Error) -> String {
    let text: String = error.to_string().chars().filter(|c| !c.is_control()).collect();
    format!("[SERVERBUG] Mail store error: {text}")
}
