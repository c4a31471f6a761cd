//! IMAP has no conversation rules beyond its codec's: a response group is framed against the
//! commands the client sent (`Codec::peer_sent`), so what a whole conversation could show (a
//! greeting that is not OK, PREAUTH or BYE; a completion that is not OK, NO or BAD; a message
//! number beyond EXISTS) is already a finding on the group that shows it (RFC 9051 §2.2.2, §7.1).
