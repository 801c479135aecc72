"""Checks on a media asset a template sends: Meta's media object, by id or by link."""

from collections.abc import Collection, Mapping

from flowsvc.engine import limits
from flowsvc.engine.render import PLACEHOLDER
from flowsvc.validation.context import check_text
from flowsvc.validation.violation import Violation, check_keys, clip, kind

CAPTIONED = ("image", "video", "document")
"""Media types Meta lets carry a caption (audio and stickers take none)."""
MAX_FILENAME = 240
MAX_MEDIA_ID = 256
MAX_LINK = 2000


def check_media(
    media_type: str,
    value: object,
    path: str,
    out: list[Violation],
    *,
    names: Collection[str],
    header: bool = False,
) -> None:
    """A media object: exactly one of `id` (an uploaded asset) or `link` (a public http(s)
    URL); a caption on images, videos and documents (not in a header); a document's filename."""
    example = '{"link": "https://..."} or {"id": "<media id>"}'
    if not isinstance(value, Mapping):
        out.append(Violation(path, f"must be an object like {example}, not {kind(value)}"))
        return
    allowed = ["id", "link"]
    if media_type in CAPTIONED and not header:
        allowed.append("caption")
    if media_type == "document":
        allowed.append("filename")
    check_keys(value, tuple(allowed), path, out)
    if ("id" in value) == ("link" in value):
        out.append(
            Violation(path, f"needs exactly one of id (an uploaded media id) or link: {example}")
        )
    if "id" in value:
        media_id = value["id"]
        if not isinstance(media_id, str) or not media_id.strip() or len(media_id) > MAX_MEDIA_ID:
            out.append(Violation(f"{path}.id", "must be the media id Meta gave the upload"))
    if "link" in value:
        link = value["link"]
        if not isinstance(link, str) or not link.startswith(("https://", "http://")):
            out.append(
                Violation(f"{path}.link", f"must be a public http(s) URL, not '{clip(link)}'")
            )
        elif len(link) > MAX_LINK or any(char.isspace() for char in link):
            out.append(
                Violation(f"{path}.link", f"must be one URL of at most {MAX_LINK} characters")
            )
    if "caption" in value and "caption" in allowed:
        check_text(value["caption"], f"{path}.caption", out, limit=limits.MAX_CAPTION, names=names)
    if "filename" in value:
        filename = value["filename"]
        if not isinstance(filename, str) or not filename.strip():
            out.append(Violation(f"{path}.filename", "must be a file name such as 'invoice.pdf'"))
        elif len(filename) > MAX_FILENAME or "/" in filename:
            out.append(
                Violation(
                    f"{path}.filename",
                    f"must be a plain file name of at most {MAX_FILENAME} characters",
                )
            )


def check_url(value: object, path: str, out: list[Violation], *, names: Collection[str]) -> None:
    """A URL a button opens: http(s), its scheme and host written out (placeholders, filled
    percent-encoded, only after them), at most MAX_LINK characters."""
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        out.append(Violation(path, f"must be an http(s) URL, not '{clip(value)}'"))
        return
    if len(value) > MAX_LINK or any(char.isspace() for char in value):
        out.append(Violation(path, f"must be one URL of at most {MAX_LINK} characters"))
    host = value.split("://", 1)[1].split("/", 1)[0]
    if "{" in host or not host:
        out.append(
            Violation(
                path,
                "must name its host: placeholders may fill the path or query, not the host",
            )
        )
    for match in PLACEHOLDER.finditer(value):
        if match.group(1) not in names:
            out.append(
                Violation(path, f"{{{match.group(1)}}} is not a context key this template sets")
            )
