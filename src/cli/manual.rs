//! `trackedge man`: the manual page, from the command line's definition
//! plus what a manual needs beyond `--help` (environment, files, exit
//! status, examples).
//!
//! clap_mangen's own subcommand section points at one page per subcommand
//! (`trackedge-sign(1)`), which we do not ship; the subcommands are
//! described here, in this one page, instead.

use std::io::Write;

use clap_mangen::Man;

/// Renders the whole page.
pub fn render(cmd: clap::Command, w: &mut dyn Write) -> std::io::Result<()> {
    let man = Man::new(cmd.clone());
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    subcommands(&cmd, w)?;
    w.write_all(EXTRA.as_bytes())?;
    man.render_version_section(w)
}

/// Text made safe for roff: backslashes, hyphens (so they copy as the
/// ASCII hyphen options need), and a leading dot or quote.
fn roff(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// One `.TP` entry per subcommand with its usage and options.
fn subcommands(cmd: &clap::Command, w: &mut dyn Write) -> std::io::Result<()> {
    writeln!(w, ".SH COMMANDS")?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let mut usage = format!("trackedge {}", sub.get_name());
        for a in sub.get_positionals() {
            let name = a
                .get_value_names()
                .and_then(|v| v.first())
                .map_or_else(|| a.get_id().to_string().to_uppercase(), |v| v.to_string());
            usage.push_str(&format!(" {name}"));
        }
        if sub.get_opts().next().is_some() {
            usage.push_str(" [OPTIONS]");
        }
        writeln!(w, ".TP\n\\fB{}\\fR", roff(&usage))?;
        if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
            writeln!(w, "{}", roff(&about.to_string()))?;
        }
        for a in sub.get_opts() {
            let Some(long) = a.get_long() else { continue };
            let value = a
                .get_value_names()
                .and_then(|v| v.first())
                .map(|v| format!(" {v}"))
                .unwrap_or_default();
            let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            writeln!(
                w,
                ".RS\n.TP\n\\fB{}\\fR\n{}\n.RE",
                roff(&format!("--{long}{value}")),
                roff(&help)
            )?;
        }
    }
    Ok(())
}

/// The sections clap knows nothing of, in roff.
const EXTRA: &str = r#".SH ENVIRONMENT
.TP
\fBTRACKEDGE_\fR\fISECTION\fR\fB__\fR\fIKEY\fR
Overrides one configuration key, over the file, e.g.
\fBTRACKEDGE_SERVER__LISTEN=0.0.0.0:8080\fR or
\fBTRACKEDGE_KAFKA__BROKERS=k1:9092,k2:9092\fR. Two underscores separate the
section from the key. Other variables that start with \fBTRACKEDGE_\fR (such
as those Kubernetes injects for a Service named trackedge) are not
configuration: they are ignored and named in a warning. The container image
sets \fBTRACKEDGE_SERVER__LISTEN\fR, which wins over a mounted file's
\fBlisten\fR; \fBcheck\-config\fR says so.
.TP
\fBRUST_LOG\fR
Log filter, e.g. \fBwarn\fR or \fBinfo,trackedge=debug\fR. Default: \fBinfo\fR.
.SH FILES
.TP
\fB./config/trackedge.toml\fR
Read from the working directory when \fB\-\-config\fR is not given and the
file exists; otherwise the built-in defaults apply. The built-in defaults are
this file as shipped, with every key documented.
.TP
\fBdata/events.ndjson\fR, \fBdata/spool/\fR
The file sink's events and the Kafka sink's disk spool (\fBsink.file_path\fR,
\fBkafka.spool_dir\fR), relative to the working directory by default.
.SH "EXIT STATUS"
.TP
\fB0\fR
Success.
.TP
\fB64\fR
Bad usage or a bad configuration: the message names the key, where it was set
(file and line, or environment variable) and what to write instead.
.TP
\fB1\fR
A failure at run time: a listener that cannot be bound, a sink that cannot
start, a token that does not verify.
.SH EXAMPLES
.TP
Try it out on loopback with the built-in development key:
.nf
trackedge serve
trackedge sign click \-\-campaign spring\-sale \-\-recipient r\-42 \e
  \-\-url https://shop.example.com/sale
.fi
.TP
Make a signing key and check a configuration before deploying it:
.nf
trackedge gen\-key
trackedge check\-config \-\-config /etc/trackedge/trackedge.toml
.fi
.TP
Tell whether a link from a mail verifies:
.nf
trackedge verify 'http://localhost:8080/c/eyJr...'
.fi
.TP
Read this page, install completions:
.nf
trackedge man | man \-l \-
trackedge completions bash > /etc/bash_completion.d/trackedge
.fi
"#;
