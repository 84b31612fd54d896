"""The report as a PDF, drawn with reportlab (pure Python: no browser, no system libraries).

reportlab's platypus lays out paragraphs, tables that split across pages and
images, so the PDF carries the same content as the HTML page; matplotlib's
PdfPages would need every page laid out by hand.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any


from medsr._lazy import optional_module
from medsr.errors import UsageError
from medsr.io import atomic_path

__all__ = ["write_pdf"]

_INSTALL = "reportlab is needed for report.pdf: pip install reportlab"


def _image(data: bytes, max_w: float, max_h: float) -> Any:
    from reportlab.lib.utils import ImageReader
    from reportlab.platypus import Image

    w, h = ImageReader(io.BytesIO(data)).getSize()
    k = min(max_w / w, max_h / h)
    return Image(io.BytesIO(data), width=w * k, height=h * k)


def _case_flowable(c: dict[str, Any], page_w: float, P: Any, e: Any, body: Any, small: Any, lead: list[Any] | None = None) -> Any:
    """A case panel: the HTML grid (images row, error maps under their images) as a 6-column table."""
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.platypus import KeepTogether, Spacer, Table, TableStyle

    centred = ParagraphStyle("centred", parent=small, alignment=1)
    cols = 6
    tw = page_w / cols
    side = tw - 6
    imgs: list[Any] = [""] * cols
    labels: list[Any] = [""] * cols
    if c["overview"]:
        imgs[0] = _image(c["overview"], side, side)
        labels[0] = P("Whole image, zoomed region in yellow", centred)
    for i, (label, png) in enumerate(c["top"], start=1):
        imgs[i] = _image(png, side, side)
        labels[i] = P(e(label), centred)
    errs: list[Any] = [""] * cols
    err_labels: list[Any] = [""] * cols
    for label, png, col in c["bottom"]:
        errs[col - 1] = _image(png, side, side)
        err_labels[col - 1] = P(e(label), centred)
    legend = [
        P(f"Grey levels: {e(c['window'])}.<br/>Error maps (right): {e(c['diff_scale'])}.", small),
        _image(c["colorbar"], 3 * tw - 8, 14 * 2.83),
    ]
    errs[0] = legend
    t = Table([imgs, labels, errs, err_labels], colWidths=[tw] * cols)
    t.setStyle(TableStyle([("ALIGN", (0, 0), (-1, -1), "CENTER"), ("VALIGN", (0, 0), (-1, -1), "TOP"),
                           ("SPAN", (0, 2), (2, 3)), ("VALIGN", (0, 2), (2, 3), "MIDDLE"),
                           ("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
                           ("LEFTPADDING", (0, 0), (-1, -1), 2), ("RIGHTPADDING", (0, 0), (-1, -1), 2)]))
    where = f" &middot; slice {c['slice']}" if c["slice"] is not None else ""
    head = (f"<b>{e(c['rank'].capitalize())}</b> &ndash; <b>{e(c['model'])}</b> &middot; {e(c['path'] or c['case'])} "
            f"{'' if c['class'] == 'all' else ' &middot; class ' + e(c['class'])}{where} &middot; {e(c['headline'])}")
    return KeepTogether(list(lead or []) + [P(head, body), t, Spacer(1, 8)])


def write_pdf(ctx: dict[str, Any], path: Path) -> Path:
    """Write the report context of :func:`medsr.report.build.report_context` to ``path`` (A4)."""
    if optional_module("reportlab.platypus") is None:
        raise UsageError(_INSTALL)
    from xml.sax.saxutils import escape

    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import CondPageBreak, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=styles["BodyText"], fontSize=9.5, leading=12.5)
    small = ParagraphStyle("small", parent=body, fontSize=8, leading=10, textColor=colors.HexColor("#555555"))
    cell = ParagraphStyle("cell", parent=body, fontSize=8, leading=9.5)
    h1, h2, h3 = styles["Title"], styles["Heading2"], styles["Heading3"]
    h3 = ParagraphStyle("h3", parent=h3, fontSize=11, spaceBefore=8, spaceAfter=3)
    colour = {"better": "#1b7a2b", "worse": "#b22222", "unclear": "#555555", "few": "#555555", "": "#1d1d1f"}

    def P(text: str, style: Any = body) -> Any:
        return Paragraph(text, style)

    def e(text: Any) -> str:
        return escape(str(text))

    page_w = A4[0] - 30 * mm
    story: list[Any] = []
    story.append(P(e(ctx["title"]), h1))
    meta = (
        f"{ctx['n_images']} images &middot; {e(ctx['modalities'])} &middot; scale {e(ctx['scales'])} &middot; "
        f"methods: {e(', '.join(ctx['models']))} &middot; created {e(ctx['created'])} &middot; medsr {e(ctx['version'])}"
    )
    if ctx.get("data"):
        meta += f" &middot; data: {e(ctx['data'])}"
    story.append(P(meta, small))
    if ctx["n_failed"]:
        story.append(P(f"{ctx['n_failed']} image(s) could not be read and are not included (see errors.csv).", small))

    story.append(P("What was done", h2))
    story.append(P(e(ctx["intro"])))
    for term, text in ctx["metric_help"]:
        story.append(P(f"<b>{e(term)}</b>: {e(text)}"))
    if ctx["findings"]:
        story.append(P("Main results", h3))
        for f in ctx["findings"]:
            story.append(P(f"&bull; {e(f['where'])}: <b>{e(f['model'])}</b> was <font color='{colour[f['verdict'] or '']}'><b>{e(f['word'])}</b></font> "
                           f"&ndash; {e(f['detail'])}", body))

    grid = TableStyle(
        [
            ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#c9ced6")),
            ("BACKGROUND", (0, 0), (-1, 1), colors.HexColor("#e9edf2")),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ("FONTSIZE", (0, 0), (-1, -1), 8),
            ("LEFTPADDING", (0, 0), (-1, -1), 3),
            ("RIGHTPADDING", (0, 0), (-1, -1), 3),
        ]
    )

    def metric_cells(c: dict[str, Any]) -> list[Any]:
        mean = f"<b>{e(c['mean'])} &#9733;</b>" if c["best"] else e(c["mean"])
        sd = f" &plusmn; {e(c['sd'])}" if c["sd"] is not None else ""
        out = [P(f"{mean}{sd}", cell)]
        if c["diff"] is None:
            out += [P("&mdash;", cell), P("&mdash;", cell)]
        else:
            ci = f" ({e(c['ci'])})" if c["ci"] else ""
            out.append(P(f"<font color='{colour[c['verdict']]}'><b>{e(c['diff'])}</b></font>{ci}", cell))
            mark = f"<font color='#8a5a00'>{e(c['mark'])}</font>" if c.get("mark") else ""
            out.append(P(f"{e(c['p'])}{mark}", cell))
        return out

    for sec in ctx["sections"]:
        story.append(CondPageBreak(150 * mm))
        story.append(P(f"{e(sec['title'])} <font size='9' color='#555555'>(n = {sec['n']} image{'s' if sec['n'] != 1 else ''})</font>", h2))
        for t in sec["tables"]:
            caution = "; small group: no verdict" if t["small"] else ""
            head = [
                [P("<b>Method</b>", cell), P("<b>PSNR (dB), higher is better</b>", cell), "", "", P("<b>SSIM, higher is better</b>", cell), "", ""],
                ["", P("mean &plusmn; SD", cell), P("difference vs bicubic (95% CI)", cell), P("p", cell),
                 P("mean &plusmn; SD", cell), P("difference vs bicubic (95% CI)", cell), P("p", cell)],
            ]
            data = head + [
                [P(f"<b>{e(r['model'])}</b>" + (" (GAN)" if r["is_gan"] else ""), cell)]
                + metric_cells(r["cells"]["psnr"]) + metric_cells(r["cells"]["ssim"])
                for r in t["rows"]
            ]
            widths = [0.15, 0.15, 0.19, 0.08, 0.16, 0.19, 0.08]
            table = Table(data, colWidths=[w * page_w for w in widths], repeatRows=2)
            style = TableStyle(grid.getCommands() + [("SPAN", (1, 0), (3, 0)), ("SPAN", (4, 0), (6, 0)), ("SPAN", (0, 0), (0, 1))])
            table.setStyle(style)
            notes = [P(f"<font color='#8a5a00'>{e(m)} {e(text)}</font>", small) for m, text in t["notes"]]
            story.append(KeepTogether([P(f"{e(t['label'])} <font size='8' color='#555555'>(n = {t['n']}{caution})</font>", h3), table] + notes))
        story.append(P(f"&#9733; best mean in the table. {e(ctx['verdict_legend'])} p: paired Wilcoxon signed-rank test.", small))
        other = [[P(f"<b>{h}</b>", cell) for h in ("Method", "Mean absolute error (% of range), lower is better",
                                                    "Relative error (NRMSE), lower is better",
                                                    "Edge sharpness (1 = as sharp as the original)",
                                                    "Consistency PSNR (dB), higher is better")]]
        for r in sec["other"]:
            row = [P(f"<b>{e(r['model'])}</b>", cell)]
            for c in r["cells"]:
                d = f" <font color='{colour[c['verdict']]}'>({e(c['diff'])} vs bicubic)</font>" if c["diff"] is not None else ""
                row.append(P(e(c["value"]) + d, cell))
            other.append(row)
        t2 = Table(other, colWidths=[0.16 * page_w] + [0.21 * page_w] * 4, repeatRows=1)
        t2.setStyle(TableStyle(grid.getCommands()[:1] + [("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e9edf2")), ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]))
        story.append(KeepTogether([P("Other measures (all images of this modality)", h3), t2]))
        for p in sec["plots"]:
            story.append(KeepTogether([_image(p["png"], 0.8 * page_w, 70 * mm), P(e(p["caption"]), small), Spacer(1, 4)]))
        if sec["cases"]:
            lead = [
                P("Example images: best, median and worst case", h3),
                P("The images where each method gained most, a typical amount (median) and least over bicubic, by PSNR "
                  "(for bicubic alone: its best, median and worst). Each panel shows a detailed region, enlarged pixel for pixel, "
                  "beside the whole image. The error maps show |method &minus; original| with one colour scale per case: black means "
                  "no error, bright means a large error.", small),
            ]
            for i, c in enumerate(sec["cases"]):
                story.append(_case_flowable(c, page_w, P, e, body, small, lead if i == 0 else None))

    story.append(CondPageBreak(80 * mm))
    story.append(P("Consistency check", h2))
    story.append(P("A faithful method should not contradict what was actually measured: if its output is reduced again in exactly the "
                   "same way as the original was, it should give back the low-resolution input. The consistency PSNR compares the two "
                   "(higher is better). A method with a much lower value than bicubic has changed the image content rather than only adding detail."))
    cons = [[P("<b>Modality</b>", cell), P("<b>Method</b>", cell), P("<b>Consistency PSNR (dB), mean &plusmn; SD</b>", cell), P("<b>n</b>", cell)]]
    for sec in ctx["sections"]:
        for r in sec["consistency"]:
            cons.append([P(e(sec["title"]), cell), P(e(r["model"]), cell), P(e(r["mean"]) + (f" &plusmn; {e(r['sd'])}" if r["sd"] is not None else ""), cell), P(str(r["n"]), cell)])
    t3 = Table(cons, colWidths=[0.25 * page_w, 0.25 * page_w, 0.35 * page_w, 0.1 * page_w], repeatRows=1)
    t3.setStyle(TableStyle(grid.getCommands()[:1] + [("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e9edf2"))]))
    story.append(t3)

    if ctx["gan"]:
        story.append(P("Possibly invented detail (GAN models)", h2))
        for g in ctx["gan"]:
            ref = (f"{e(g['reference'])} (no pixel-loss network was evaluated)" if g["reference"] == "bicubic"
                   else f"{e(g['reference'])}, a network trained only for pixel accuracy")
            story.append(P(f"<b>{e(g['model'])}</b> was trained adversarially (a GAN) to produce sharp, realistic-looking images. Such models "
                           "can add texture or small structures that were not in the patient. In its case panels, the map “possibly invented "
                           f"detail” shows in red, over the original, where {e(g['model'])} departs from {ref}: no colour below 2% of the displayed grey range, full red at 10%. Red areas are "
                           "<b>possibly invented detail</b>: check them against the original before trusting them."))
            if g["cases"]:
                lines = "<br/>".join(
                    f"\u00d7{c['scale']}, {e(c['rank'].lower())} &middot; {e(c['path'] or c['case'])}: {e(c['gan_fraction'])} of the zoomed region flagged"
                    for c in g["cases"]
                )
                story.append(P(lines, body))

    story.append(P("Limits of this evaluation", h2))
    for text in ctx["limits"]:
        story.append(P(f"&bull; {e(text)}"))
    story.append(P("Technical details", h2))
    for text in ctx["technical"]:
        story.append(P(f"&bull; {e(text)}", small))
    if not ctx["show_ids"]:
        story.append(P("Images are identified by anonymous case numbers; no file names or patient identifiers are shown.", small))

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7.5)
        canvas.setFillColor(colors.HexColor("#777777"))
        canvas.drawString(15 * mm, 9 * mm, f"medsr {ctx['version']} \u2013 super-resolution evaluation \u2013 research use, not for diagnosis")
        canvas.drawRightString(A4[0] - 15 * mm, 9 * mm, f"page {doc.page}")
        canvas.restoreState()

    with atomic_path(path) as tmp:
        doc = SimpleDocTemplate(str(tmp), pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=14 * mm,
                                bottomMargin=16 * mm, title=ctx["title"], author=f"medsr {ctx['version']}")
        doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return path
