"""A strict local stand-in for the GitHub Releases API.

GitHub cannot be reached from the test machines, so publishing is tested
against this HTTP server on 127.0.0.1. It implements the endpoints the
publisher uses and rejects what GitHub rejects: missing or wrong tokens
(401), requests without the JSON media type, releases without a tag or
with a tag that exists (422), uploads without a name, content type or
length, or with a name already taken (422 already_exists). Like GitHub,
the by-tag endpoint hides drafts, listings paginate with Link headers,
assets carry a "sha256:" digest, and a failed upload leaves an asset in
state "starter" that blocks its name. It can be told to fail an upload
part-way (`fail_upload_number`). An asset is downloaded as on GitHub: the API
redirects to a storage URL, which refuses a request that carries the token.

The latest release follows GitHub's rules: publishing a release (draft false)
makes it the latest unless `make_latest` is "false" (or it is a prerelease);
`make_latest: "true"` on a published release makes it the latest; "legacy"
picks the newest by creation. `GET /repos/O/N/releases/latest` answers it, and
the public download URLs `/O/N/releases/latest/download/NAME` and
`/O/N/releases/download/TAG/NAME` (GET and HEAD, no token) redirect to the
storage as github.com does; a draft's assets are not public."""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass
class State:
    token: str
    repo: str
    releases: dict[int, dict[str, Any]] = field(default_factory=dict)
    assets: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> asset (with release_id)
    blobs: dict[int, bytes] = field(default_factory=dict)  # id -> the asset's bytes (for downloads)
    events: list[tuple[str, str]] = field(default_factory=list)
    next_id: int = 1
    uploads: int = 0
    fail_upload_number: int | None = None  # the Nth upload (1-based) fails part-way
    per_page_cap: int = 100
    latest_id: int | None = None  # GitHub's latest release (explicitly made, or by the rules above)

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id


class Handler(http.server.BaseHTTPRequestHandler):
    state: State
    base: str

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def _send(self, status: int, payload: Any = None, headers: dict[str, str] | None = None) -> None:
        body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _fail(self, status: int, message: str, code: str | None = None, resource: str = "Release") -> None:
        payload: dict[str, Any] = {"message": message, "documentation_url": "https://docs.github.com/rest"}
        if code:
            payload["errors"] = [
                {"resource": resource, "code": code, "field": "name" if resource != "Release" else "tag_name"}
            ]
        self._send(status, payload)

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization", "")
        if header not in (f"Bearer {self.state.token}", f"token {self.state.token}"):
            self._fail(401, "Bad credentials")
            return False
        accept = self.headers.get("Accept", "")
        if "application/vnd.github" not in accept and "application/json" not in accept:
            self._fail(415, "Unsupported 'Accept' header")
            return False
        version = self.headers.get("X-GitHub-Api-Version")
        if version is not None and version != "2022-11-28":
            self._fail(400, f"Invalid API version {version}")
            return False
        return True

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        return self.rfile.read(int(length)) if length else b""

    def _json_body(self) -> dict[str, Any] | None:
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            self._fail(415, "Content-Type must be application/json")
            return None
        try:
            data = json.loads(self._body() or b"{}")
        except ValueError:
            self._fail(400, "Problems parsing JSON")
            return None
        return data if isinstance(data, dict) else {}

    def _route(self) -> tuple[str, dict[str, list[str]]]:
        parsed = urllib.parse.urlsplit(self.path)
        return parsed.path, urllib.parse.parse_qs(parsed.query)

    def _public(self, release: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in release.items()}

    def _page(self, items: list[Any], query: dict[str, list[str]], path: str) -> None:
        per_page = min(int(query.get("per_page", ["30"])[0]), self.state.per_page_cap)
        page = int(query.get("page", ["1"])[0])
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            headers["Link"] = f'<{self.base}{path}?per_page={per_page}&page={page + 1}>; rel="next"'
        self._send(200, chunk, headers)

    def do_HEAD(self) -> None:
        path, _ = self._route()
        if (match := re.fullmatch(r"/download/(\d+)", path)) and int(match.group(1)) in self.state.blobs:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(self.state.blobs[int(match.group(1))])))
            self.end_headers()
            return
        asset = self._public_asset(path)
        if asset is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._redirect_to_storage(asset["id"])

    def _public_asset(self, path: str) -> dict[str, Any] | None:
        """The asset a public download URL names (a published release's, uploaded), else None."""
        prefix = f"/{self.state.repo}/releases"
        if match := re.fullmatch(rf"{prefix}/latest/download/([^/]+)", path):
            release = self.state.releases.get(self.state.latest_id or -1)
            name = match.group(1)
        elif match := re.fullmatch(rf"{prefix}/download/([^/]+)/([^/]+)", path):
            tag, name = urllib.parse.unquote(match.group(1)), match.group(2)
            release = next((r for r in self.state.releases.values() if r["tag_name"] == tag), None)
        else:
            return None
        if release is None or release["draft"]:
            return None
        return next(
            (a for a in self.state.assets.values()
             if a["release_id"] == release["id"] and a["name"] == name and a["state"] == "uploaded"),
            None,
        )  # fmt: skip

    def _redirect_to_storage(self, asset_id: int) -> None:
        self.send_response(302)
        self.send_header("Location", f"{self.base}/download/{asset_id}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        path, query = self._route()
        if path.startswith(f"/{self.state.repo}/releases/"):
            asset = self._public_asset(path)
            if asset is None:
                self.send_response(404)
                self.send_header("Content-Length", "9")
                self.end_headers()
                self.wfile.write(b"Not Found")
                return
            self._redirect_to_storage(asset["id"])
            return
        if match := re.fullmatch(r"/download/(\d+)", path):
            # The storage an asset download redirects to: no token, like GitHub's.
            data = self.state.blobs.get(int(match.group(1)))
            if data is None or "Authorization" in self.headers:
                self._fail(400 if data is not None else 404, "Bad Request" if data is not None else "Not Found")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        prefix = f"/repos/{self.state.repo}/releases"
        if (match := re.fullmatch(rf"{prefix}/assets/(\d+)", path)) and "octet-stream" in self.headers.get(
            "Accept", ""
        ):
            if self.headers.get("Authorization", "") not in (f"Bearer {self.state.token}", f"token {self.state.token}"):
                self._fail(401, "Bad credentials")
                return
            if int(match.group(1)) not in self.state.blobs:
                self._fail(404, "Not Found")
                return
            self.send_response(302)
            self.send_header("Location", f"{self.base}/download/{match.group(1)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if not self._authorised():
            return
        if path == prefix:
            self._page(sorted(self.state.releases.values(), key=lambda r: -r["id"]), query, path)
        elif path == f"{prefix}/latest":
            latest = self.state.releases.get(self.state.latest_id or -1)
            self._send(200, latest) if latest else self._fail(404, "Not Found")
        elif match := re.fullmatch(rf"{prefix}/tags/(.+)", path):
            found = [r for r in self.state.releases.values() if r["tag_name"] == match.group(1) and not r["draft"]]
            self._send(200, found[0]) if found else self._fail(404, "Not Found")
        elif match := re.fullmatch(rf"{prefix}/(\d+)/assets", path):
            release_id = int(match.group(1))
            if release_id not in self.state.releases:
                self._fail(404, "Not Found")
                return
            assets = [a for a in self.state.assets.values() if a["release_id"] == release_id]
            self._page(sorted(assets, key=lambda a: a["id"]), query, path)
        else:
            self._fail(404, "Not Found")

    def do_POST(self) -> None:
        if not self._authorised():
            return
        path, query = self._route()
        if path == f"/repos/{self.state.repo}/releases":
            data = self._json_body()
            if data is None:
                return
            tag = data.get("tag_name")
            if not tag:
                self._fail(422, "Validation Failed", "missing_field")
                return
            if any(r["tag_name"] == tag for r in self.state.releases.values()):
                self._fail(422, "Validation Failed", "already_exists")
                return
            release: dict[str, Any] = {
                "id": self.state.new_id(), "tag_name": tag, "name": data.get("name", tag), "body": data.get("body", ""),
                "draft": bool(data.get("draft", False)), "prerelease": bool(data.get("prerelease", False)),
            }  # fmt: skip
            self.state.releases[release["id"]] = release
            self._settle_latest(release, data.get("make_latest"), published=not release["draft"])
            self.state.events.append(("create", tag))
            self._send(201, release)
        elif match := re.fullmatch(rf"/repos/{self.state.repo}/releases/(\d+)/assets", path):
            self._upload(int(match.group(1)), query)
        else:
            self._fail(404, "Not Found")

    def _upload(self, release_id: int, query: dict[str, list[str]]) -> None:
        if release_id not in self.state.releases:
            self._fail(404, "Not Found")
            return
        name = query.get("name", [""])[0]
        content_type = self.headers.get("Content-Type")
        length = self.headers.get("Content-Length")
        if not name or not NAME_PATTERN.match(name):
            self._fail(422, "Validation Failed", "invalid", "ReleaseAsset")
            return
        if not content_type or length is None:
            self._fail(400, "Content-Type and Content-Length are required")
            return
        if any(a["name"] == name and a["release_id"] == release_id for a in self.state.assets.values()):
            self._body()
            self._fail(422, "Validation Failed", "already_exists", "ReleaseAsset")
            return
        self.state.uploads += 1
        data = self.rfile.read(int(length))
        asset: dict[str, Any] = {
            "id": self.state.new_id(), "release_id": release_id, "name": name, "content_type": content_type,
            "size": len(data), "state": "uploaded", "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
            "browser_download_url": f"{self.base}/download/{release_id}/{name}",
        }  # fmt: skip
        if self.state.uploads == self.state.fail_upload_number:
            # GitHub keeps a broken "starter" asset after a failed upload.
            asset.update(state="starter", digest=None, size=0)
            self.state.assets[asset["id"]] = asset
            self.state.events.append(("failed-upload", name))
            self._fail(502, "Server Error")
            return
        self.state.assets[asset["id"]] = asset
        self.state.blobs[asset["id"]] = data
        self.state.events.append(("upload", name))
        self._send(201, {k: v for k, v in asset.items() if k != "release_id"})

    def do_PATCH(self) -> None:
        if not self._authorised():
            return
        path, _ = self._route()
        match = re.fullmatch(rf"/repos/{self.state.repo}/releases/(\d+)", path)
        if not match or int(match.group(1)) not in self.state.releases:
            self._fail(404, "Not Found")
            return
        data = self._json_body()
        if data is None:
            return
        release = self.state.releases[int(match.group(1))]
        if data.get("make_latest") not in (None, "true", "false", "legacy"):
            self._fail(422, "Validation Failed", "invalid")
            return
        published = release["draft"] and data.get("draft") is False
        release.update({k: v for k, v in data.items() if k in ("draft", "prerelease", "name", "body")})
        self._settle_latest(release, data.get("make_latest"), published=published)
        self.state.events.append(("publish" if data.get("draft") is False else "update", release["tag_name"]))
        self._send(200, release)

    def _settle_latest(self, release: dict[str, Any], make_latest: str | None, *, published: bool) -> None:
        """GitHub's latest release after a create or an update of `release`."""
        state = self.state
        eligible = not release["draft"] and not release["prerelease"]
        if make_latest == "legacy":
            candidates = [r["id"] for r in state.releases.values() if not r["draft"] and not r["prerelease"]]
            state.latest_id = max(candidates, default=None)
        elif eligible and (make_latest == "true" or (make_latest is None and published)):
            state.latest_id = release["id"]
        elif state.latest_id == release["id"] and not eligible:
            candidates = [r["id"] for r in state.releases.values() if not r["draft"] and not r["prerelease"]]
            state.latest_id = max(candidates, default=None)

    def do_DELETE(self) -> None:
        if not self._authorised():
            return
        path, _ = self._route()
        match = re.fullmatch(rf"/repos/{self.state.repo}/releases/assets/(\d+)", path)
        if not match or int(match.group(1)) not in self.state.assets:
            self._fail(404, "Not Found")
            return
        asset = self.state.assets.pop(int(match.group(1)))
        self.state.blobs.pop(asset["id"], None)
        self.state.events.append(("delete", asset["name"]))
        self._send(204)


class GitHubStandIn:
    def __init__(self, token: str, repo: str) -> None:
        self.state = State(token=token, repo=repo)
        bound: type[Handler] = type("BoundHandler", (Handler,), {"state": self.state})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), bound)
        bound.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = bound.base
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> GitHubStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
