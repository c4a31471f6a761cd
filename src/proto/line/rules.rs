//! Plain lines have no conversation rules: no RFC pairs one line with another, so what a line
//! server must answer is each suite's business (its `expect` steps), not a passive rule.
