//! The raw engine: an HTTP/3 server on quinn alone, for the faults `h3` cannot have (it checks
//! the control streams and the frames of a request itself). It opens its control stream, reads
//! the client's streams, and answers every request stream that ends with `200` and a short body,
//! getting wrong only what its faults say.

use quinn::{Connection, RecvStream, SendStream, VarInt};

use super::fault::{Fault, Faults};

/// Most bytes read from one client stream; the rest is not looked at.
const MAX_READ: usize = 1 << 20;
/// H3_FRAME_UNEXPECTED, H3_STREAM_CREATION_ERROR and H3_INTERNAL_ERROR (RFC 9114 §8.1).
const H3_FRAME_UNEXPECTED: u32 = 0x105;
const H3_STREAM_CREATION_ERROR: u32 = 0x103;
const H3_INTERNAL_ERROR: u32 = 0x102;
const H3_SETTINGS_ERROR: u32 = 0x109;
/// The frame types RFC 9114 §7.2 defines (HTTP/2's reserved ones excluded).
const KNOWN_FRAMES: &[u64] = &[0x0, 0x1, 0x3, 0x4, 0x5, 0x7, 0xd];

/// Serves one connection until the client closes it.
pub(super) async fn serve(conn: Connection, faults: &Faults) {
    // Our control stream: its type, then SETTINGS with no parameters (RFC 9114 §7.2.4), unless
    // the fault leaves it out.
    let Ok(mut control) = conn.open_uni().await else { return };
    let settings: &[u8] = match faults.has(Fault::NoSettings) {
        true => &[0x00],
        false => &[0x00, 0x04, 0x00],
    };
    if control.write_all(settings).await.is_err() {
        return;
    }
    let controls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            uni = conn.accept_uni() => {
                let Ok(uni) = uni else { break };
                let (conn, faults, controls) = (conn.clone(), faults.clone(), controls.clone());
                tasks.spawn(async move { read_uni(uni, &conn, &faults, &controls).await });
            }
            bi = conn.accept_bi() => {
                let Ok((send, recv)) = bi else { break };
                let (conn, faults) = (conn.clone(), faults.clone());
                tasks.spawn(async move { answer(send, recv, &conn, &faults).await });
            }
        }
    }
    drop(control);
}

/// Reads a client's unidirectional stream, judging it as its bytes come (a control stream
/// stays open for the whole connection).
async fn read_uni(mut stream: RecvStream, conn: &Connection, faults: &Faults, controls: &std::sync::atomic::AtomicUsize) {
    let mut bytes = Vec::new();
    let mut typed = false;
    loop {
        let ended = match stream.read_chunk(MAX_READ, true).await {
            Ok(Some(chunk)) => {
                bytes.extend_from_slice(&chunk.bytes);
                false
            }
            Ok(None) | Err(_) => true,
        };
        if bytes.len() > MAX_READ {
            return;
        }
        if let Some((kind, at)) = varint(&bytes, 0) {
            if !std::mem::replace(&mut typed, true) {
                if faults.has(Fault::RejectsUnknown) && kind > 0x03 {
                    conn.close(VarInt::from_u32(H3_STREAM_CREATION_ERROR), b"unknown stream type");
                    return;
                }
                let second = kind == 0x00 && controls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0;
                if second && faults.has(Fault::WrongCode) {
                    conn.close(VarInt::from_u32(H3_INTERNAL_ERROR), b"a second control stream");
                    return;
                }
            }
            if kind == 0x00 && faults.has(Fault::RejectsUnknown) {
                if let Some(why) = unknown_on_control(&bytes, at) {
                    conn.close(VarInt::from_u32(why.0), why.1);
                    return;
                }
            }
            // The control stream's rules, each broken with the wrong code.
            if kind == 0x00 && faults.has(Fault::WrongCode) {
                let first_frame = varint(&bytes, at).map(|(t, _)| t);
                if first_frame.is_some_and(|t| t != 0x04) || ended {
                    conn.close(VarInt::from_u32(H3_INTERNAL_ERROR), b"control stream");
                    return;
                }
            }
        }
        if ended {
            return;
        }
    }
}

/// A frame of an unknown type, or a setting of an unknown identifier, on a control stream whose
/// frames start at `at`: what the `rejects-unknown` fault closes the connection with.
fn unknown_on_control(bytes: &[u8], mut at: usize) -> Option<(u32, &'static [u8])> {
    while let Some((kind, after)) = varint(bytes, at) {
        let (len, start) = varint(bytes, after)?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        let payload = bytes.get(start..end)?;
        if !KNOWN_FRAMES.contains(&kind) {
            return Some((H3_FRAME_UNEXPECTED, b"unknown frame type"));
        }
        if kind == 0x04 {
            let mut p = 0;
            while let Some((id, next)) = varint(payload, p) {
                if ![0x1, 0x6, 0x7, 0x8, 0x33].contains(&id) {
                    return Some((H3_SETTINGS_ERROR, b"unknown setting"));
                }
                p = varint(payload, next)?.1;
            }
        }
        at = end;
    }
    None
}

/// Answers a request stream once it ends, whatever its frames.
async fn answer(mut send: SendStream, mut recv: RecvStream, conn: &Connection, faults: &Faults) {
    let (bytes, ended) = read_all(&mut recv).await;
    if faults.has(Fault::RejectsUnknown) {
        let mut at = 0;
        while let Some((kind, after)) = varint(&bytes, at) {
            if !KNOWN_FRAMES.contains(&kind) {
                conn.close(VarInt::from_u32(H3_FRAME_UNEXPECTED), b"unknown frame type");
                return;
            }
            let Some((len, after)) = varint(&bytes, after) else { break };
            at = after.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
        }
    }
    if !ended {
        return;
    }
    // HEADERS: a field section with no dynamic table reference (two zero octets, RFC 9204
    // §4.5.1) and :status 200 as static table entry 25 (0xc0 | 25); then DATA "ok\n".
    let response = [0x01, 0x03, 0x00, 0x00, 0xd9, 0x00, 0x03, b'o', b'k', b'\n'];
    if send.write_all(&response).await.is_ok() {
        let _ = send.finish();
        let _ = send.stopped().await;
    }
}

/// What a stream carries, up to `MAX_READ` bytes, and whether it ended cleanly (FIN) within it.
async fn read_all(stream: &mut RecvStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        match stream.read_chunk(MAX_READ, true).await {
            Ok(Some(chunk)) => {
                out.extend_from_slice(&chunk.bytes);
                if out.len() > MAX_READ {
                    return (out, false);
                }
            }
            Ok(None) => return (out, true),
            Err(_) => return (out, false),
        }
    }
}

/// The QUIC variable-length integer at `at` (RFC 9000 §16) and where it ends.
fn varint(bytes: &[u8], at: usize) -> Option<(u64, usize)> {
    let first = *bytes.get(at)?;
    let len = 1usize << (first >> 6);
    let raw = bytes.get(at..at + len)?;
    let mut value = u64::from(first & 0x3f);
    for b in &raw[1..] {
        value = value << 8 | u64::from(*b);
    }
    Some((value, at + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        assert_eq!(varint(&[0x25], 0), Some((37, 1)));
        assert_eq!(varint(&[0x7b, 0xbd], 0), Some((15293, 2)));
        assert_eq!(varint(&[0x9d, 0x7f, 0x3e, 0x7d], 0), Some((494878333, 4)));
        assert_eq!(varint(&[0x40], 0), None);
        assert_eq!(varint(&[], 0), None);
    }
}
