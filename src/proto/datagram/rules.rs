//! Raw datagrams have no conversation rules: UDP (RFC 768) promises neither a reply nor an order,
//! so nothing over a whole exchange can be held against either side.
