//! What every protocol shares, in the same four files a protocol has: the codec vocabulary
//! (`Codec`, `Message`, `Finding`, `Framer`, line splitting), the structured step vocabulary
//! (`Steps`, `StructuredSend`/`StructuredExpect`, `Mismatch`), and the conversation rules more than
//! one protocol keeps (greeting, then one reply per command). The registry is `proto`'s own
//! `mod.rs`; this folder names no protocol.

pub mod actor;
pub mod codec;
pub mod rules;
pub mod split;
pub mod steps;
