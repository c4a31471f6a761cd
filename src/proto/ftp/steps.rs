//! The FTP vocabulary.
//!
//! ```yaml
//! # Commands (the verb as written, the argument after one space; CRLF added):
//! - send: { command: USER, arg: anonymous }
//! - send: { command: PASV }
//! - send: { port_of: "${act.addr}" }      # PORT h1,h2,h3,h4,p1,p2 for a listener's IPv4 address
//! - send: { eprt_of: "${act.addr}" }      # EPRT |1|127.0.0.1|port| (or |2|::1|port|)
//! # Replies:
//! - expect: { code: 220 }                 # or [331, 230], or a class: 2xx
//!   # text: a regex some reply line matches (the first and last without their code)
//!   # multiline: true                      a `123-` ... `123 ` reply
//! - expect: { pasv: data }                # a 227 reply; sets ${data} = "h.h.h.h:port",
//!                                         # ${data.host} and ${data.port}
//! - expect: { epsv: dport }               # a 229 reply `(|||port|)`; sets ${dport}
//! - expect: { code: 257, capture: { dir: '"(.*)"' } }   # regex groups over the reply's text
//! # The harness as the server: commands checked, replies sent.
//! - expect: { command: [STOR, APPE], arg: '^up' }      # verbs in any case; arg is a regex
//! - expect: { port: act }                 # a PORT command; sets ${act} = "h.h.h.h:port",
//!                                         # ${act.host} and ${act.port}; eprt: act for EPRT
//! - send: { code: 230, text: [Welcome, "to the lab", "Login ok"] }   # a list is a multi-line reply
//! - send: { pasv_of: "${data.addr}" }     # 227 Entering Passive Mode (h1,h2,h3,h4,p1,p2).
//! - send: { epsv_of: "${data.port}" }     # 229 Entering Extended Passive Mode (|||port|)
//! ```

use std::net::SocketAddr;

use regex::Regex;

use super::codec::{command_bytes, eprt_arg, parse_eprt_arg, parse_epsv, parse_pasv, parse_port_arg, port_arg, reply_bytes, FtpMessage};
use crate::proto::steps::{apply_captures, mismatch, parse_captures};
use crate::proto::{Message, Mismatch, RenderCx, Steps, StructuredExpect, StructuredSend};
use crate::syntax::{Data, LoadCx, Loc, Node, Template};

/// The structured `send:`/`expect:` keys of FTP.
pub static STEPS: Steps = Steps {
    send_keys: &["command", "arg", "port_of", "eprt_of", "code", "text", "pasv_of", "epsv_of"],
    expect_keys: &["code", "text", "multiline", "pasv", "epsv", "command", "arg", "port", "eprt"],
    parse_send,
    parse_expect,
};

/// A command built from a mapping.
#[derive(Debug)]
struct FtpSend {
    verb: String,
    arg: Option<SendArg>,
}

#[derive(Debug)]
enum SendArg {
    Text(Template),
    PortOf(Template),
    EprtOf(Template),
}

const REPLY_KEYS: &[&str] = &["code", "text", "pasv_of", "epsv_of"];

fn parse_send(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredSend>> {
    let is_reply = matches!(&node.data, Data::Map(pairs) if pairs.iter().any(|(k, _)| REPLY_KEYS.contains(&k.as_str().unwrap_or(""))));
    if is_reply {
        return parse_reply_send(node, cx);
    }
    let f = cx.fields(node, &["command", "arg", "port_of", "eprt_of"], "an FTP command")?;
    let given: Vec<&str> = ["arg", "port_of", "eprt_of"].into_iter().filter(|k| f.get(k).is_some()).collect();
    if given.len() > 1 {
        cx.err_help(
            node,
            format!("an FTP command has one argument, not {}", given.join(" and ")),
            "port_of and eprt_of write the argument themselves",
        );
        return None;
    }
    let verb = match (f.get("command"), given.first().copied()) {
        (Some(n), _) => {
            let v = cx.string(n, "command")?;
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic()) {
                cx.err_help(n, "an FTP command is one word", "e.g. command: RETR, arg: file.txt");
                return None;
            }
            v
        }
        (None, Some("port_of")) => "PORT".into(),
        (None, Some("eprt_of")) => "EPRT".into(),
        _ => {
            cx.err_help(node, "an FTP send needs a command", "e.g. send: { command: USER, arg: anonymous }");
            return None;
        }
    };
    let arg = match given.first().copied() {
        Some("arg") => Some(SendArg::Text(cx.template(f.get("arg")?, "arg")?)),
        Some("port_of") => Some(SendArg::PortOf(address(cx, f.get("port_of")?, AddrForm::Port)?)),
        Some("eprt_of") => Some(SendArg::EprtOf(address(cx, f.get("eprt_of")?, AddrForm::Eprt)?)),
        _ => None,
    };
    Some(Box::new(FtpSend { verb, arg }))
}

/// A template for an address (`${act.addr}`), checked now when it has no variables.
fn address(cx: &mut LoadCx, n: &Node, form: AddrForm) -> Option<Template> {
    let t = cx.template(n, "an address")?;
    if let Some(s) = t.as_literal() {
        if let Err(e) = render_addr(s, form) {
            cx.err_help(n, e, "e.g. \"${act.addr}\", the address of a listen step");
            return None;
        }
    }
    Some(t)
}

/// How an address is written: `h1,h2,h3,h4,p1,p2` for PORT and 227, `|1|host|port|` for EPRT.
#[derive(Debug, Clone, Copy)]
enum AddrForm {
    Port,
    Pasv,
    Eprt,
}

fn render_addr(s: &str, form: AddrForm) -> Result<String, String> {
    let a: SocketAddr = s.parse().map_err(|_| format!("'{s}' is not an address (host:port)"))?;
    match (form, a) {
        (AddrForm::Eprt, a) => Ok(eprt_arg(a)),
        (_, SocketAddr::V4(a)) => Ok(port_arg(a)),
        (AddrForm::Port, SocketAddr::V6(_)) => Err(format!(
            "PORT carries an IPv4 address (RFC 959 §4.1.2), '{s}' is IPv6: use eprt_of (RFC 2428 §2)"
        )),
        (AddrForm::Pasv, SocketAddr::V6(_)) => Err(format!(
            "a 227 reply carries an IPv4 address (RFC 959 §4.1.2), '{s}' is IPv6: use epsv_of (RFC 2428 §3)"
        )),
    }
}

impl StructuredSend for FtpSend {
    fn render(&self, cx: &RenderCx) -> Result<Vec<u8>, String> {
        let arg = match &self.arg {
            None => None,
            Some(SendArg::Text(t)) => Some(t.render(cx.vars)?),
            Some(SendArg::PortOf(t)) => Some(render_addr(&t.render(cx.vars)?, AddrForm::Port)?),
            Some(SendArg::EprtOf(t)) => Some(render_addr(&t.render(cx.vars)?, AddrForm::Eprt)?),
        };
        // A structured command keeps the rules it checks; raw sends are for breaking them.
        if arg.as_deref().is_some_and(|a| a.contains(['\r', '\n'])) {
            return Err(format!(
                "the argument of {} holds a line break; send it raw to break the line",
                self.verb
            ));
        }
        Ok(command_bytes(&self.verb, arg.as_deref()))
    }

    fn templates(&self) -> Vec<&Template> {
        match &self.arg {
            Some(SendArg::Text(t) | SendArg::PortOf(t) | SendArg::EprtOf(t)) => vec![t],
            None => Vec::new(),
        }
    }
}

/// A reply built from a mapping, when the harness plays the server.
#[derive(Debug)]
struct ReplySend {
    code: u16,
    body: ReplyBody,
}

#[derive(Debug)]
enum ReplyBody {
    /// One line, or the lines of a multi-line reply.
    Lines(Vec<Template>),
    /// 227 with `(h1,h2,h3,h4,p1,p2)` for an address.
    PasvOf(Template),
    /// 229 with `(|||port|)` for an address or a port.
    EpsvOf(Template),
}

fn parse_reply_send(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredSend>> {
    let f = cx.fields(node, REPLY_KEYS, "an FTP reply")?;
    let given: Vec<&str> = ["text", "pasv_of", "epsv_of"].into_iter().filter(|k| f.get(k).is_some()).collect();
    if given.len() > 1 {
        cx.err_help(
            node,
            format!("an FTP reply has one text, not {}", given.join(" and ")),
            "pasv_of and epsv_of write the text themselves",
        );
        return None;
    }
    let body = match given.first().copied() {
        Some("pasv_of") => ReplyBody::PasvOf(address(cx, f.get("pasv_of")?, AddrForm::Pasv)?),
        Some("epsv_of") => ReplyBody::EpsvOf(cx.template(f.get("epsv_of")?, "an address or a port")?),
        Some(_) => {
            let n = f.get("text")?;
            match &n.data {
                Data::Seq(items) if !items.is_empty() => items
                    .iter()
                    .map(|i| cx.template(i, "a line"))
                    .collect::<Option<Vec<_>>>()
                    .map(ReplyBody::Lines)?,
                _ => ReplyBody::Lines(vec![cx.template(n, "text")?]),
            }
        }
        None => ReplyBody::Lines(vec![Template::literal("")]),
    };
    let code = match (f.get("code"), &body) {
        (Some(n), _) => match cx.number::<u16>(n, "a reply code")? {
            c @ 100..=599 => c,
            _ => {
                cx.err_help(
                    n,
                    "a reply code is 100 to 599 (RFC 959 §4.2.1)",
                    "send a raw line to break the rule",
                );
                return None;
            }
        },
        (None, ReplyBody::PasvOf(_)) => 227,
        (None, ReplyBody::EpsvOf(_)) => 229,
        (None, ReplyBody::Lines(_)) => {
            cx.err_help(node, "an FTP reply needs a code", "e.g. send: { code: 220, text: ready }");
            return None;
        }
    };
    Some(Box::new(ReplySend { code, body }))
}

impl StructuredSend for ReplySend {
    fn render(&self, cx: &RenderCx) -> Result<Vec<u8>, String> {
        let lines = match &self.body {
            ReplyBody::Lines(ls) => ls.iter().map(|l| l.render(cx.vars)).collect::<Result<Vec<_>, _>>()?,
            ReplyBody::PasvOf(t) => vec![format!(
                "Entering Passive Mode ({}).",
                render_addr(&t.render(cx.vars)?, AddrForm::Pasv)?
            )],
            ReplyBody::EpsvOf(t) => {
                let s = t.render(cx.vars)?;
                let port = match s.parse::<u16>() {
                    Ok(p) => p,
                    Err(_) => s
                        .parse::<SocketAddr>()
                        .map_err(|_| format!("'{s}' is neither a port nor an address"))?
                        .port(),
                };
                if port == 0 {
                    return Err("a 229 reply carries a port from 1 to 65535 (RFC 2428 §3), not 0".into());
                }
                vec![format!("Entering Extended Passive Mode (|||{port}|)")]
            }
        };
        if lines.iter().any(|l| l.contains(['\r', '\n'])) {
            return Err(format!(
                "a line of the {} reply holds a line break; give the lines as a list",
                self.code
            ));
        }
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        Ok(reply_bytes(self.code, &lines))
    }

    fn templates(&self) -> Vec<&Template> {
        match &self.body {
            ReplyBody::Lines(ls) => ls.iter().collect(),
            ReplyBody::PasvOf(t) | ReplyBody::EpsvOf(t) => vec![t],
        }
    }
}

/// Reply codes accepted: exact codes and whole classes (`4xx`).
#[derive(Debug, Default)]
struct CodeMatch {
    codes: Vec<u16>,
    classes: Vec<u16>,
}

impl CodeMatch {
    fn accepts(&self, code: u16) -> bool {
        self.codes.contains(&code) || self.classes.contains(&(code / 100))
    }

    fn describe(&self) -> String {
        let mut all: Vec<String> = self.codes.iter().map(u16::to_string).collect();
        all.extend(self.classes.iter().map(|k| format!("{k}xx")));
        all.join(" or ")
    }
}

/// `226` or `2xx`.
fn code_item(n: &Node, cx: &mut LoadCx, m: &mut CodeMatch) -> Option<()> {
    match n.as_str() {
        Some(s) if s.len() == 3 && s.ends_with("xx") && (b'1'..=b'5').contains(&s.as_bytes()[0]) => {
            m.classes.push((s.as_bytes()[0] - b'0') as u16)
        }
        _ => match cx.number::<u16>(n, "a reply code (226) or class (2xx)")? {
            c @ 100..=599 => m.codes.push(c),
            _ => {
                cx.err_help(n, "a reply code is 100 to 599 (RFC 959 §4.2.1)", "e.g. code: 226, or a class: 2xx");
                return None;
            }
        },
    }
    Some(())
}

/// The variable a data address or port is captured into, and where the suite names it.
#[derive(Debug)]
struct CaptureTo {
    var: String,
    at: Loc,
}

/// Checks on a reply, or on a command when the harness plays the server.
#[derive(Debug)]
struct FtpExpect {
    code: Option<(CodeMatch, Loc)>,
    text: Option<(Template, Loc)>,
    multiline: Option<bool>,
    pasv: Option<CaptureTo>,
    epsv: Option<CaptureTo>,
    command: Option<Vec<String>>,
    arg: Option<(Template, Loc)>,
    port: Option<CaptureTo>,
    eprt: Option<CaptureTo>,
    captures: Vec<(String, Regex)>,
}

fn variable(cx: &mut LoadCx, n: &Node, key: &str) -> Option<CaptureTo> {
    let var = cx.string(n, key)?;
    let ok = !var.is_empty() && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
    if !ok {
        cx.err_help(
            n,
            format!("{key} names a variable"),
            format!("e.g. {key}: data, then use ${{data}}"),
        );
        return None;
    }
    Some(CaptureTo { var, at: n.loc })
}

fn parse_expect(node: &Node, cx: &mut LoadCx) -> Option<Box<dyn StructuredExpect>> {
    let f = cx.fields(
        node,
        &[
            "code",
            "text",
            "multiline",
            "pasv",
            "epsv",
            "command",
            "arg",
            "port",
            "eprt",
            "capture",
        ],
        "an FTP expect",
    )?;
    let code = match f.get("code") {
        None => None,
        Some(n) => {
            let mut m = CodeMatch::default();
            match &n.data {
                Data::Seq(items) => {
                    for i in items {
                        code_item(i, cx, &mut m)?;
                    }
                }
                _ => code_item(n, cx, &mut m)?,
            }
            Some((m, n.loc))
        }
    };
    let text = match f.get("text") {
        Some(n) => Some((cx.regex(n)?, n.loc)),
        None => None,
    };
    let multiline = cx.optional(&f, "multiline", |cx, n| cx.boolean(n, "multiline"))?;
    let pasv = cx.optional(&f, "pasv", |cx, n| variable(cx, n, "pasv"))?;
    let epsv = cx.optional(&f, "epsv", |cx, n| variable(cx, n, "epsv"))?;
    let command = match f.get("command") {
        None => None,
        Some(n) => Some(match &n.data {
            Data::Seq(items) => items
                .iter()
                .map(|i| cx.string(i, "a command").map(|s| s.to_ascii_uppercase()))
                .collect::<Option<Vec<_>>>()?,
            _ => vec![cx.string(n, "command")?.to_ascii_uppercase()],
        }),
    };
    let arg = match f.get("arg") {
        Some(n) => Some((cx.regex(n)?, n.loc)),
        None => None,
    };
    let port = cx.optional(&f, "port", |cx, n| variable(cx, n, "port"))?;
    let eprt = cx.optional(&f, "eprt", |cx, n| variable(cx, n, "eprt"))?;
    let reply_keys = code.is_some() || text.is_some() || multiline.is_some() || pasv.is_some() || epsv.is_some();
    if reply_keys && (command.is_some() || arg.is_some() || port.is_some() || eprt.is_some()) {
        cx.err_help(
            node,
            "an FTP expect checks a reply or a command, not both",
            "code, text, multiline, pasv and epsv check replies; command, arg, port and eprt check commands",
        );
        return None;
    }
    if pasv.is_some() && epsv.is_some() {
        cx.err(node, "a reply is a 227 (pasv) or a 229 (epsv), not both");
        return None;
    }
    if port.is_some() && eprt.is_some() {
        cx.err(node, "a command is a PORT or an EPRT, not both");
        return None;
    }
    let captures = match f.get("capture") {
        Some(c) => parse_captures(c, cx, "dir: '\"(.*)\"'")?,
        None => Vec::new(),
    };
    Some(Box::new(FtpExpect {
        code,
        text,
        multiline,
        pasv,
        epsv,
        command,
        arg,
        port,
        eprt,
        captures,
    }))
}

impl FtpExpect {
    fn wants_command(&self) -> bool {
        self.command.is_some() || self.arg.is_some() || self.port.is_some() || self.eprt.is_some()
    }

    fn check_reply(&self, code: u16, lines: &[String], msg: &Message, cx: &RenderCx) -> Result<Vec<(String, String)>, Mismatch> {
        if self.wants_command() {
            return Err(mismatch(
                format!("a reply ({code}) came where a client command was expected"),
                self.describe(),
                msg,
            ));
        }
        if let Some((c, at)) = &self.code {
            if !c.accepts(code) {
                return Err(mismatch(format!("reply code {code}, expected {}", c.describe()), self.describe(), msg).at(*at));
            }
        }
        if let Some(ml) = self.multiline {
            if ml != (lines.len() > 1) {
                let what = if ml {
                    "a multi-line reply (RFC 959 §4.2)"
                } else {
                    "a one-line reply"
                };
                return Err(mismatch(
                    format!("expected {what}, got {} lines", lines.len()),
                    self.describe(),
                    msg,
                ));
            }
        }
        if let Some((t, at)) = &self.text {
            let re = regex(t, cx, msg)?;
            if !lines.iter().any(|l| re.is_match(l)) {
                return Err(mismatch(format!("no reply line matches /{}/", re.as_str()), self.describe(), msg).at(*at));
            }
        }
        let mut out = Vec::new();
        let text = lines.join("\n");
        if let Some(p) = &self.pasv {
            if code != 227 {
                let m = format!("reply code {code}, expected 227 with the data address (RFC 959 §4.1.2, PASV)");
                return Err(mismatch(m, self.describe(), msg).at(p.at));
            }
            let Some(a) = parse_pasv(&text) else {
                let m = "the 227 reply has no address h1,h2,h3,h4,p1,p2 with numbers 0 to 255 (RFC 959 §4.1.2, RFC 1123 §4.1.2.6)";
                return Err(mismatch(m, self.describe(), msg).at(p.at));
            };
            out.extend(address_vars(&p.var, SocketAddr::V4(a)));
        }
        if let Some(e) = &self.epsv {
            if code != 229 {
                let m = format!("reply code {code}, expected 229 with the data port (RFC 2428 §3, EPSV)");
                return Err(mismatch(m, self.describe(), msg).at(e.at));
            }
            let Some(port) = parse_epsv(&text) else {
                let m = "the 229 reply has no (|||port|): one delimiter four times around a port 1 to 65535 (RFC 2428 §3)";
                return Err(mismatch(m, self.describe(), msg).at(e.at));
            };
            out.push((e.var.clone(), port.to_string()));
        }
        Ok(out)
    }

    fn check_command(&self, verb: &str, arg: Option<&str>, msg: &Message, cx: &RenderCx) -> Result<Vec<(String, String)>, Mismatch> {
        if !self.wants_command() {
            return Err(mismatch(
                format!("the client command {verb} came where a reply was expected"),
                self.describe(),
                msg,
            ));
        }
        if let Some(cs) = &self.command {
            if !cs.iter().any(|c| c == verb) {
                return Err(mismatch(
                    format!("the command is {verb}, expected {}", cs.join(" or ")),
                    self.describe(),
                    msg,
                ));
            }
        }
        if let Some((t, at)) = &self.arg {
            let re = regex(t, cx, msg)?;
            let Some(a) = arg else {
                return Err(mismatch(
                    format!("{verb} has no argument, expected one matching /{}/", re.as_str()),
                    self.describe(),
                    msg,
                )
                .at(*at));
            };
            if !re.is_match(a) {
                return Err(mismatch(
                    format!("the argument \"{a}\" does not match /{}/", re.as_str()),
                    self.describe(),
                    msg,
                )
                .at(*at));
            }
        }
        let mut out = Vec::new();
        let wanted = [
            ("PORT", &self.port, "RFC 959 §4.1.2: h1,h2,h3,h4,p1,p2"),
            ("EPRT", &self.eprt, "RFC 2428 §2: |1|h.h.h.h|port| or |2|ipv6|port|"),
        ];
        for (want, into, syntax) in wanted {
            let Some(into) = into else { continue };
            if verb != want {
                return Err(mismatch(format!("the command is {verb}, expected {want}"), self.describe(), msg).at(into.at));
            }
            let a = arg.unwrap_or_default();
            let addr = match want {
                "PORT" => parse_port_arg(a).map(SocketAddr::V4),
                _ => parse_eprt_arg(a),
            };
            let Some(addr) = addr else {
                return Err(mismatch(
                    format!("the {verb} argument \"{a}\" is not an address ({syntax})"),
                    self.describe(),
                    msg,
                )
                .at(into.at));
            };
            out.extend(address_vars(&into.var, addr));
        }
        Ok(out)
    }
}

fn regex(t: &Template, cx: &RenderCx, msg: &Message) -> Result<Regex, Mismatch> {
    let p = t.render_regex(cx.vars).map_err(|e| mismatch(e, "", msg))?;
    Regex::new(&p).map_err(|e| mismatch(e.to_string(), "", msg))
}

/// `${v}` = "h.h.h.h:port", `${v.host}` and `${v.port}`.
fn address_vars(var: &str, a: SocketAddr) -> [(String, String); 3] {
    [
        (var.to_string(), a.to_string()),
        (format!("{var}.host"), a.ip().to_string()),
        (format!("{var}.port"), a.port().to_string()),
    ]
}

impl StructuredExpect for FtpExpect {
    fn check(&self, msg: &Message, cx: &RenderCx) -> Result<Vec<(String, String)>, Mismatch> {
        let mut out = match FtpMessage::of(msg) {
            Some(FtpMessage::Reply { code, lines }) => self.check_reply(*code, lines, msg, cx)?,
            Some(FtpMessage::Command { verb, arg }) => self.check_command(verb, arg.as_deref(), msg, cx)?,
            Some(FtpMessage::NoCode { .. }) => {
                return Err(mismatch(
                    "a line without a reply code came (RFC 959 §4.2: a reply starts with three digits)",
                    self.describe(),
                    msg,
                ))
            }
            None => return Err(mismatch("not an FTP message", self.describe(), msg)),
        };
        out.extend(apply_captures(&self.captures, msg, self.describe())?);
        Ok(out)
    }

    fn templates(&self) -> Vec<&Template> {
        self.text.iter().chain(self.arg.iter()).map(|(t, _)| t).collect()
    }

    fn captures(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for into in [&self.pasv, &self.port, &self.eprt].into_iter().flatten() {
            out.extend(address_vars(&into.var, SocketAddr::from(([0, 0, 0, 0], 0))).map(|(k, _)| k));
        }
        out.extend(self.epsv.iter().map(|e| e.var.clone()));
        out.extend(self.captures.iter().map(|(n, _)| n.clone()));
        out
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some((c, _)) = &self.code {
            parts.push(format!("reply {}", c.describe()));
        }
        if let Some(p) = &self.pasv {
            parts.push(format!("a 227 data address into ${{{}}}", p.var));
        }
        if let Some(e) = &self.epsv {
            parts.push(format!("a 229 data port into ${{{}}}", e.var));
        }
        if let Some(c) = &self.command {
            parts.push(format!("command {}", c.join(" or ")));
        }
        if let Some(p) = &self.port {
            parts.push(format!("PORT with an address into ${{{}}}", p.var));
        }
        if let Some(e) = &self.eprt {
            parts.push(format!("EPRT with an address into ${{{}}}", e.var));
        }
        if let Some((t, _)) = &self.arg {
            parts.push(format!("an argument matching /{}/", t.as_literal().unwrap_or("..")));
        }
        if let Some((t, _)) = &self.text {
            parts.push(format!("a line matching /{}/", t.as_literal().unwrap_or("..")));
        }
        match self.multiline {
            Some(true) => parts.push("multi-line".into()),
            Some(false) => parts.push("one line".into()),
            None => {}
        }
        parts.join(", ")
    }

    fn if_refused(&self, addr: SocketAddr) -> Option<String> {
        self.pasv.as_ref()?;
        let mut note =
            "it is the 227 reply's address, where p1,p2 are the port's high byte then its low byte (RFC 959 §4.1.2: port = p1*256+p2)"
                .to_string();
        // The commonest mistake, the bytes the other way round, named with the port it leads to.
        let [high, low] = addr.port().to_be_bytes();
        let swapped = u16::from_be_bytes([low, high]);
        if swapped != addr.port() {
            note.push_str(&format!("; a server listening on port {swapped} sent them the other way round"));
        }
        Some(note)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::proto::ftp::{CommandCodec, ReplyCodec};
    use crate::proto::steps::testing;
    use crate::proto::{Codec, Frame, Transport};
    use crate::syntax::Vars;

    fn decode(mut c: impl Codec, wire: &str) -> Message {
        match c.decode(wire.as_bytes(), true).unwrap() {
            Frame::Message(m, _) => m,
            Frame::Incomplete => panic!("incomplete"),
        }
    }

    fn vars(v: &[(&str, &str)]) -> Vars {
        v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn cx(vars: &Vars) -> RenderCx<'_> {
        RenderCx {
            vars,
            base_dir: Path::new("."),
            transport: Transport::Tcp,
            local: None,
        }
    }

    /// The captures of `expect` over the reply `wire`, or the mismatch's message.
    fn reply(expect: &str, wire: &str) -> Result<Vec<(String, String)>, String> {
        let e = testing::expect(&STEPS, expect).unwrap();
        e.check(&decode(ReplyCodec, wire), &cx(&Vars::new())).map_err(|m| m.message)
    }

    fn command(expect: &str, wire: &str) -> Result<Vec<(String, String)>, String> {
        let e = testing::expect(&STEPS, expect).unwrap();
        e.check(&decode(CommandCodec, wire), &cx(&Vars::new())).map_err(|m| m.message)
    }

    fn send(yaml: &str, v: &[(&str, &str)]) -> Result<String, String> {
        let s = testing::send(&STEPS, yaml)?;
        s.render(&cx(&vars(v))).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn codes_classes_lists_text_and_multiline() {
        assert!(reply("{ code: 226 }", "226 Transfer complete.\r\n").is_ok());
        assert!(reply("{ code: [331, 230] }", "230 ok\r\n").is_ok());
        assert!(reply("{ code: 2xx, text: '(?i)complete' }", "226 Transfer complete.\r\n").is_ok());
        assert_eq!(
            reply("{ code: 2xx }", "530 Not logged in.\r\n").unwrap_err(),
            "reply code 530, expected 2xx"
        );
        let banner = "230-Welcome\r\n  to the server\r\n230 Login ok\r\n";
        assert!(reply("{ code: 230, multiline: true, text: 'to the server' }", banner).is_ok());
        assert!(reply("{ multiline: false }", banner)
            .unwrap_err()
            .contains("one-line reply, got 3 lines"));
        let err = reply("{ text: '^Bye' }", banner).unwrap_err();
        assert!(err.contains("no reply line matches /^Bye/"), "{err}");
        let err = reply("{ code: 220 }", "hello\r\n").unwrap_err();
        assert!(err.contains("without a reply code"), "{err}");
        let caps = reply("{ code: 257, capture: { dir: '\"(.*)\"' } }", "257 \"/pub\" is current\r\n").unwrap();
        assert_eq!(caps, [("dir".to_string(), "/pub".to_string())]);
    }

    #[test]
    fn pasv_sets_the_address_its_host_and_port() {
        let caps = reply("{ pasv: data }", "227 Entering Passive Mode (127,0,0,1,200,15).\r\n").unwrap();
        let want = [("data", "127.0.0.1:51215"), ("data.host", "127.0.0.1"), ("data.port", "51215")];
        assert_eq!(caps, want.map(|(k, v)| (k.to_string(), v.to_string())));
        let e = testing::expect(&STEPS, "{ pasv: data }").unwrap();
        assert_eq!(e.captures(), ["data", "data.host", "data.port"]);
        let err = reply("{ pasv: data }", "502 not here\r\n").unwrap_err();
        assert!(err.contains("expected 227") && err.contains("RFC 959 §4.1.2"), "{err}");
        let err = reply("{ pasv: data }", "227 Entering Passive Mode (127,0,0,1,300,15)\r\n").unwrap_err();
        assert!(err.contains("RFC 1123 §4.1.2.6"), "{err}");
    }

    #[test]
    fn a_refused_pasv_address_names_the_port_with_its_bytes_swapped() {
        let e = testing::expect(&STEPS, "{ pasv: data }").unwrap();
        let note = e.if_refused("127.0.0.1:4040".parse().unwrap()).unwrap();
        assert!(note.contains("p1*256+p2") && note.contains("port 51215 sent them"), "{note}");
        let same = e.if_refused("127.0.0.1:257".parse().unwrap()).unwrap();
        assert!(!same.contains("other way round"), "{same}");
        let e = testing::expect(&STEPS, "{ epsv: dport }").unwrap();
        assert_eq!(e.if_refused("127.0.0.1:4040".parse().unwrap()), None);
    }

    #[test]
    fn epsv_sets_the_port() {
        let caps = reply("{ epsv: dport }", "229 Entering Extended Passive Mode (|||6446|)\r\n").unwrap();
        assert_eq!(caps, [("dport".to_string(), "6446".to_string())]);
        let err = reply("{ epsv: dport }", "229 Entering Extended Passive Mode (|||6446)\r\n").unwrap_err();
        assert!(err.contains("RFC 2428 §3"), "{err}");
        assert!(reply("{ epsv: dport }", "227 (1,2,3,4,5,6)\r\n")
            .unwrap_err()
            .contains("expected 229"));
    }

    #[test]
    fn commands_when_the_harness_plays_the_server() {
        assert!(command("{ command: [port, EPRT], arg: '^\\d+(,\\d+){5}$' }", "port 127,0,0,1,4,1\r\n").is_ok());
        let err = command("{ command: RETR }", "STOR x\r\n").unwrap_err();
        assert_eq!(err, "the command is STOR, expected RETR");
        assert!(command("{ command: LIST, arg: x }", "LIST\r\n")
            .unwrap_err()
            .contains("has no argument"));
        assert!(command("{ code: 200 }", "NOOP\r\n")
            .unwrap_err()
            .contains("where a reply was expected"));
        assert!(reply("{ command: NOOP }", "200 ok\r\n")
            .unwrap_err()
            .contains("where a client command was expected"));
    }

    #[test]
    fn sends_commands_port_and_eprt() {
        assert_eq!(send("{ command: USER, arg: anonymous }", &[]).unwrap(), "USER anonymous\r\n");
        assert_eq!(send("{ command: pasv }", &[]).unwrap(), "pasv\r\n");
        let act = [("act.addr", "127.0.0.1:40000")];
        assert_eq!(
            send("{ command: PORT, port_of: '${act.addr}' }", &act).unwrap(),
            "PORT 127,0,0,1,156,64\r\n"
        );
        assert_eq!(send("{ port_of: '${act.addr}' }", &act).unwrap(), "PORT 127,0,0,1,156,64\r\n");
        assert_eq!(send("{ eprt_of: '${act.addr}' }", &act).unwrap(), "EPRT |1|127.0.0.1|40000|\r\n");
        assert_eq!(send("{ eprt_of: '[::1]:21' }", &[]).unwrap(), "EPRT |2|::1|21|\r\n");
        let err = send("{ port_of: '${a}' }", &[("a", "[::1]:21")]).unwrap_err();
        assert!(err.contains("use eprt_of"), "{err}");
        let err = send("{ command: RETR, arg: '${f}' }", &[("f", "a\r\nDELE b")]).unwrap_err();
        assert!(err.contains("line break"), "{err}");
    }

    #[test]
    fn port_and_eprt_commands_set_the_client_address() {
        let caps = command("{ port: act }", "PORT 127,0,0,1,156,64\r\n").unwrap();
        let want = [("act", "127.0.0.1:40000"), ("act.host", "127.0.0.1"), ("act.port", "40000")];
        assert_eq!(caps, want.map(|(k, v)| (k.to_string(), v.to_string())));
        let caps = command("{ eprt: act }", "eprt |2|::1|6275|\r\n").unwrap();
        assert_eq!(caps[0], ("act".to_string(), "[::1]:6275".to_string()));
        assert_eq!(caps[1], ("act.host".to_string(), "::1".to_string()));
        let err = command("{ port: act }", "PORT 127,0,0,1,256,1\r\n").unwrap_err();
        assert!(err.contains("not an address (RFC 959 §4.1.2"), "{err}");
        let err = command("{ port: act }", "EPRT |1|127.0.0.1|6275|\r\n").unwrap_err();
        assert_eq!(err, "the command is EPRT, expected PORT");
        let e = testing::expect(&STEPS, "{ eprt: act, capture: { all: '(.*)' } }").unwrap();
        assert_eq!(e.captures(), ["act", "act.host", "act.port", "all"]);
    }

    #[test]
    fn sends_replies_as_the_server() {
        assert_eq!(send("{ code: 220, text: ready }", &[]).unwrap(), "220 ready\r\n");
        let multi = send("{ code: 230, text: [Welcome, '2 files here', Login ok] }", &[]).unwrap();
        assert_eq!(multi, "230-Welcome\r\n 2 files here\r\n230 Login ok\r\n");
        let data = [("data.addr", "127.0.0.1:51215"), ("data.port", "51215")];
        let pasv = send("{ pasv_of: '${data.addr}' }", &data).unwrap();
        assert_eq!(pasv, "227 Entering Passive Mode (127,0,0,1,200,15).\r\n");
        assert_eq!(parse_pasv(&pasv).unwrap().to_string(), "127.0.0.1:51215");
        let epsv = send("{ epsv_of: '${data.port}' }", &data).unwrap();
        assert_eq!(epsv, "229 Entering Extended Passive Mode (|||51215|)\r\n");
        assert_eq!(send("{ code: 229, epsv_of: '${data.addr}' }", &data).unwrap(), epsv);
        assert!(send("{ code: 220, text: '${t}' }", &[("t", "a\nb")])
            .unwrap_err()
            .contains("line break"));
        for (yaml, why) in [
            ("{ text: hi }", "needs a code"),
            ("{ code: 99, text: hi }", "100 to 599"),
            ("{ code: 227, text: hi, pasv_of: '1.2.3.4:5' }", "one text"),
            ("{ code: 220, arg: x }", "unknown key 'arg'"),
            ("{ pasv_of: '[::1]:21' }", "use epsv_of"),
        ] {
            let err = testing::send(&STEPS, yaml).unwrap_err();
            assert!(err.contains(why), "{yaml}: {err}");
        }
    }

    #[test]
    fn rejects_bad_vocabulary_at_load() {
        let bad = [
            ("{ arg: x }", "needs a command"),
            ("{ command: 'RETR x' }", "one word"),
            ("{ command: PORT, arg: x, port_of: '1.2.3.4:5' }", "one argument"),
            ("{ port_of: '[::1]:21' }", "use eprt_of"),
            ("{ port_of: nowhere }", "not an address"),
        ];
        for (yaml, why) in bad {
            let err = testing::send(&STEPS, yaml).unwrap_err();
            assert!(err.contains(why), "{yaml}: {err}");
        }
        let bad = [
            ("{ code: 600 }", "100 to 599"),
            ("{ code: 2x }", "a reply code"),
            ("{ code: 200, command: NOOP }", "not both"),
            ("{ code: 200, port: a }", "not both"),
            ("{ port: a, eprt: b }", "not both"),
            ("{ pasv: d, epsv: p }", "not both"),
            ("{ pasv: 'a b' }", "names a variable"),
            ("{ code: 200, colour: red }", "unknown key 'colour'"),
        ];
        for (yaml, why) in bad {
            let err = testing::expect(&STEPS, yaml).unwrap_err();
            assert!(err.contains(why), "{yaml}: {err}");
        }
    }
}
