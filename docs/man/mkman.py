#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Manual pages from include/hpn/hpn.h, so they cannot drift from it.

  mkman.py api HPN_H OUTDIR VERSION     hpn.3 and one page per function
  mkman.py bench HELP_FILE OUTDIR VERSION   hpnbench.1 from `hpnbench --help`
  mkman.py list HPN_H                   the pages `api` writes (for meson)

A function's page is its declaration and its doc comment (/** ... */), or
its short comment and its section's (the histogram's getters). Types named
in a prototype are shown on the page as the header declares them.
"""
import os
import re
import sys

DATE = "2026"


def roff_escape(s):
    s = s.replace("\\", "\\e")
    return s


def roff_line(s):
    """A line of text: a leading . or ' would be a request; a '-' that
    starts a word (-EAGAIN, --peer, -1) is a minus, not a hyphen."""
    s = roff_escape(s)
    s = re.sub(r"(?<![\w\\])-", r"\\-", s)
    if s.startswith((".", "'")):
        s = "\\&" + s
    return s


def highlight(s):
    # hpn_send() -> bold name; other hpn_ identifiers and HPN_ constants bold too
    s = re.sub(r"\b(hpn_\w+)\(\)", r"\\fB\\%\1\\fR()", s)
    s = re.sub(r"(?<![\\\w%])(HPN_[A-Z0-9_]+)\b", r"\\fB\\%\1\\fR", s)
    return s


def comment_lines(text):
    """The lines of a C comment's body, without the frame."""
    text = re.sub(r"^/\*\*?", "", text.strip())
    text = re.sub(r"\*/$", "", text)
    out = []
    for line in text.split("\n"):
        line = re.sub(r"^\s*\* ?", "", line) if line.strip().startswith("*") else line.strip()
        out.append(line.rstrip())
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    return out


def prose(lines):
    """Comment lines to roff paragraphs: blank lines part paragraphs, '- '
    starts a bullet, a line followed by deeper-indented ones is a paragraph
    of its own (the 'timeout_ms > 0:' cases of hpn_connect)."""
    blocks, cur = [], None
    indent = [len(l) - len(l.lstrip()) if l.strip() else -1 for l in lines] + [-1]
    for k, line in enumerate(lines):
        if not line.strip():
            cur = None
            blocks.append(("gap", ""))
            continue
        ind = len(line) - len(line.lstrip())
        body = line.strip()
        if body.startswith("- "):
            cur = ["bullet", body[2:], ind]
            blocks.append(cur)
        elif cur and (ind > cur[2] or (cur[0] == "para" and ind == cur[2] and not cur[3] and
                                       indent[k + 1] <= ind)):
            cur[1] += " " + body
            if cur[0] == "para" and ind > cur[2]:
                cur[3] = True
        else:
            cur = ["para", body, ind, False]
            blocks.append(cur)
    out, prev = [], None
    for b in blocks:
        if b[0] == "gap":
            prev = None
            continue
        text = highlight(roff_line(b[1]))
        if b[0] == "bullet":
            out += [".IP \\(bu 2", text]
        else:
            out += [".PP" if prev != "bullet" else ".PP", text]
        prev = b[0]
    return out


def code(lines):
    out = [".PP", ".EX"]
    for line in lines:
        out.append(roff_line(line.replace("\t", "        ")))
    out.append(".EE")
    return out


class Header:
    def __init__(self, path):
        self.text = open(path).read()
        self.intro = []       # the top comment's lines
        self.types = {}       # "struct hpn_msg" -> declaration lines (with doc comment)
        self.type_order = []
        self.constants = []   # #define blocks with comments, as in the header
        self.funcs = []       # dicts: name, decl, doc, inline, section, note
        self.parse()

    def parse(self):
        lines = self.text.split("\n")
        i, n = 0, len(lines)
        section, note, doc, pending = "", None, None, []
        first = True
        while i < n:
            line = lines[i]
            s = line.strip()
            if s.startswith("/* SPDX") or not s:
                if not s:
                    pending = []
                i += 1
                continue
            if re.match(r"/\* -{10,} \*/", s):
                section = re.sub(r"^/\*\s*|\s*\*/$", "", lines[i + 1].strip())
                note, doc, pending = None, None, []
                i += 3
                continue
            if s.startswith("/*"):
                j = i
                while "*/" not in lines[j]:
                    j += 1
                block = "\n".join(lines[i:j + 1])
                if first:
                    self.intro = comment_lines(block)
                    # drop "hpn.h - ..." title line
                    if self.intro and self.intro[0].startswith("hpn.h"):
                        self.intro = self.intro[1:]
                    first = False
                elif s.startswith("/**"):
                    doc = comment_lines(block)
                    pending = lines[i:j + 1]
                else:
                    pending = lines[i:j + 1]  # belongs to what follows it
                i = j + 1
                continue
            first = False
            if s.startswith("#define HPN_") and not s.startswith("#define HPN_HPN_H"):
                self.constants += pending + [line]
                pending, doc = [], None
                i += 1
                continue
            if s.startswith("#") or s.startswith("extern") or s == "}":
                i += 1
                continue
            m = re.match(r"(?:typedef\s+)?(struct|enum)\s+(\w+)\s*\{", s)
            if m:
                j = i
                while not lines[j].startswith("}"):
                    j += 1
                key = m.group(1) + " " + m.group(2)
                self.types[key] = pending + lines[i:j + 1]
                self.type_order.append(key)
                pending, doc = [], None
                i = j + 1
                continue
            if s.startswith("typedef"):
                # A plain comment before an opaque handle describes the
                # section's functions (the histogram's).
                if re.match(r"typedef struct (\w+) \1;", s) and pending and not doc:
                    note = comment_lines("\n".join(pending))
                m = re.search(r"\(\*(\w+)\)|(\w+)\s*;", s)
                key = m.group(1) or m.group(2)
                self.types[key] = pending + [line]
                self.type_order.append(key)
                pending, doc = [], None
                i += 1
                continue
            m = re.search(r"\b(hpn_\w+)\s*\(", s)
            if m:
                j = i
                while not lines[j].rstrip().endswith(";") and "; /*" not in lines[j]:
                    j += 1
                decl = " ".join(x.strip() for x in lines[i:j + 1])
                inline = None
                cm = re.search(r";\s*/\*\s*(.*?)\s*\*/\s*$", decl)
                if cm:
                    inline = cm.group(1)
                    decl = decl[:cm.start() + 1]
                self.funcs.append(dict(name=m.group(1), decl=decl, doc=doc, inline=inline,
                                       section=section, note=note))
                pending, doc = [], None
                i = j + 1
                continue
            i += 1

    def types_of(self, decls):
        """Types a set of declarations names, and the types those name."""
        want, seen = [], set()
        todo = list(decls)
        while todo:
            d = todo.pop(0)
            for key in self.type_order:
                name = key.split()[-1]
                if key in seen or not re.search(r"\b%s\b" % re.escape(key if " " in key else name), d):
                    continue
                if name in ("hpn_ep", "hpn_hist", "hpn_peer_t"):
                    continue  # opaque handles and a plain integer: nothing to show
                seen.add(key)
                want.append(key)
                todo.append("\n".join(self.types[key]))
        return [k for k in self.type_order if k in seen]


def th(name, sect, version, title):
    return ['.\\" Generated by docs/man/mkman.py from include/hpn/hpn.h - do not edit.',
            '.TH %s %s "%s" "hpn %s" "%s"' % (name.upper(), sect, DATE, version, title)]


def first_sentence(lines):
    text = " ".join(l.strip() for l in lines)
    text = text.replace("e.g.", "e\0g\0").replace("i.e.", "i\0e\0")  # not a sentence's end
    m = re.match(r"(.+?[.!?])(\s|$)", text)
    s = (m.group(1) if m else text).rstrip(".").replace("\0", ".")
    return s[0].lower() + s[1:] if s and not s[:2].isupper() else s


def api_pages(hdr, outdir, version):
    """A page per function: functions declared together are not one
    subject (a histogram getter is not its merge)."""
    names = []
    for f in hdr.funcs:
        name = f["name"]
        # Undocumented (the histogram's getters): the section, and what the
        # name or its own short comment says.
        summary = first_sentence(f["doc"]) if f["doc"] else "%s: %s" % (
            f["section"].lower(), f["inline"] or name.split("_")[-1])
        page = th(name, 3, version, "hpn manual")
        page += [".SH NAME", "%s \\- %s" % (name, roff_escape(summary))]
        page += [".SH SYNOPSIS", ".nf", "\\fB#include <hpn/hpn.h>\\fR", ".PP",
                 "\\fB%s\\fR" % roff_escape(f["decl"])]
        page += [".fi", ".PP", "Link with \\fI$(pkg-config \\-\\-libs hpntransport)\\fR."]
        page.append(".SH DESCRIPTION")
        if f["doc"]:
            page += prose(f["doc"])
        if f["inline"]:
            page += [".PP", "\\fB%s\\fR(): %s" % (name, highlight(roff_line(f["inline"])))]
        if f["note"]:
            page += prose(f["note"])
        types = hdr.types_of([f["decl"]])
        if types:
            page.append(".SH TYPES")
            for key in types:
                page += code(hdr.types[key])
        refs = sorted(set(re.findall(r"\b(hpn_\w+)\(\)", "\n".join(f["doc"] or []))) - {name})
        refs = [r for r in refs if any(r == g["name"] for g in hdr.funcs)]
        see = ["\\fBhpn\\fR(3)"] + ["\\fB%s\\fR(3)" % r for r in refs]
        page += [".SH SEE ALSO", ", ".join(see)]
        write(outdir, name + ".3", page)
        names.append((name, summary))
    write(outdir, "hpn.3", overview(hdr, names, version))


def overview(hdr, names, version):
    page = th("hpn", 3, version, "hpn manual")
    page += [".SH NAME", "hpn \\- one send/recv API over kernel UDP, RDMA verbs, AF_XDP and DPDK"]
    page += [".SH SYNOPSIS", ".nf", "\\fB#include <hpn/hpn.h>\\fR", ".fi", ".PP",
             "cc app.c $(pkg\\-config \\-\\-cflags \\-\\-libs hpntransport)"]
    page += [".SH DESCRIPTION"] + prose(hdr.intro)
    page += [".SH FUNCTIONS"]
    for name, summary in names:
        page += [".TP", "\\fB%s\\fR(3)" % name, roff_escape(summary)]
    page += [".SH TYPES"]
    for key in hdr.type_order:
        page += code(hdr.types[key])
    page += [".SH CONSTANTS"] + code(hdr.constants)
    page += [".SH ENVIRONMENT",
             ".TP", "\\fBHPN_\\fIKEY\\fR",
             "overrides configuration key \\fIkey\\fR of every endpoint the process creates "
             "(\\fBHPN_WAIT=block\\fR); a variable naming no key is warned about.",
             ".TP", "\\fBHPN_LOG_LEVEL\\fR",
             "\\fBwarn\\fR, \\fBinfo\\fR or \\fBdebug\\fR: log lines to standard error "
             "(silent by default; see \\fBhpn_log_set_handler\\fR(3)).",
             ".TP", "\\fBHPN_PLUGIN_PATH\\fR",
             "colon-separated directories searched for plugins before the installed ones."]
    page += [".SH SEE ALSO", "\\fBhpnbench\\fR(1); the configuration keys, the wire formats, feeds and "
             "the design in CONFIG.md, WIRE.md, FEEDS.md and ARCHITECTURE.md (installed under the "
             "documentation directory, e.g. /usr/share/doc/hpn)."]
    return page


def bench_page(help_path, outdir, version):
    lines = open(help_path).read().rstrip("\n").split("\n")
    page = th("hpnbench", 1, version, "hpn manual")
    page += [".SH NAME", "hpnbench \\- latency, throughput and feed benchmark of the hpn transports"]
    page += [".SH SYNOPSIS", "\\fBhpnbench\\fR [\\fIoptions\\fR]"]
    page += [".SH DESCRIPTION",
             "Without \\fB\\-\\-peer\\fR and \\fB\\-\\-server\\fR both ends run in this process "
             "over loopback; \\fB\\-\\-server\\fR on one host and \\fB\\-\\-peer\\fR "
             "\\fIhost\\fR on another measure the path between them. Results go to standard output "
             "(and as JSON with \\fB\\-\\-json\\fR); the exit status is 0 when the run measured what "
             "it was asked to, 1 when it could not, 2 for bad options, 130 after an interrupt "
             "that still reported."]
    page += [".SH OPTIONS"]
    opt = None
    for line in lines[1:]:
        m = re.match(r"  (--\S+(?: [^ ].*?)?)(?:\s{2,}(.*))?$", line)
        if m:
            if opt:
                page += [".TP", opt[0], " ".join(opt[1])]
            flag = re.sub(r"(--[\w-]+)", lambda k: "\\fB" + k.group(1).replace("-", "\\-") + "\\fR",
                          roff_escape(m.group(1)))
            opt = (flag, [roff_line(m.group(2))] if m.group(2) else [])
        elif opt and line.strip():
            opt[1].append(roff_line(line.strip()))
    if opt:
        page += [".TP", opt[0], " ".join(opt[1])]
    page += [".SH EXAMPLES", ".EX", "hpnbench \\-\\-plugin udp \\-\\-server            # on host2",
             "hpnbench \\-\\-plugin udp \\-\\-peer host2 \\-\\-size 64,1024", ".EE"]
    page += [".SH SEE ALSO", "\\fBhpn\\fR(3); the tools beside it (\\fBhpn\\-tune\\fR, "
             "\\fBhpn\\-hugepages\\fR, \\fBhpn\\-netns\\fR, \\fBhpn\\-dpdk\\fR) explain "
             "themselves with \\fB\\-\\-help\\fR."]
    write(outdir, "hpnbench.1", page)


def write(outdir, fname, page):
    with open(os.path.join(outdir, fname), "w") as f:
        f.write("\n".join(page) + "\n")


def main(argv):
    if len(argv) == 3 and argv[1] == "list":
        print("hpn.3")
        for f in Header(argv[2]).funcs:
            print(f["name"] + ".3")
        return 0
    if len(argv) != 5 or argv[1] not in ("api", "bench"):
        sys.stderr.write(__doc__)
        return 2
    os.makedirs(argv[3], exist_ok=True)
    if argv[1] == "api":
        api_pages(Header(argv[2]), argv[3], argv[4])
    else:
        bench_page(argv[2], argv[3], argv[4])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
