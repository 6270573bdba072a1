"""A small GitHub Releases client (REST API v3 over urllib): the endpoints
publishing needs, with GitHub Enterprise base URLs configurable; where a
release goes (GitHubTarget, from the [github] settings); downloading one."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolchain.config.settings import GitHubSettings
from toolchain.errors import ConfigError, GitHubError
from toolchain.release.version import is_prerelease

API_VERSION = "2022-11-28"


class GitHubClient:
    def __init__(self, api_url: str, uploads_url: str, repository: str, token: str) -> None:
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", repository):
            raise GitHubError(f"repository {repository!r} is not OWNER/NAME", hint="set [github] repository")
        self.api = api_url.rstrip("/")
        self.uploads = uploads_url.rstrip("/")
        self.repo = repository
        self._token = token  # never logged

    def _request(
        self, method: str, url: str, body: bytes | None = None, content_type: str = "application/json"
    ) -> tuple[int, Any, dict[str, str]]:
        request = urllib.request.Request(url, data=body, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("X-GitHub-Api-Version", API_VERSION)
        request.add_header("User-Agent", "toolchain-release")
        if body is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                raw = response.read()
                headers = {k.lower(): v for k, v in response.headers.items()}
                return response.status, (json.loads(raw) if raw else None), headers
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                payload = json.loads(raw) if raw else {}
            except ValueError:
                payload = {"message": raw.decode(errors="replace")[:200]}
            return exc.code, payload, {k.lower(): v for k, v in exc.headers.items()}
        except (urllib.error.URLError, OSError) as exc:
            raise GitHubError(
                f"cannot reach {urllib.parse.urlsplit(url).netloc}: {exc}",
                hint="check the network and [github] api-url",
            ) from exc

    def _expect(self, what: str, result: tuple[int, Any, dict[str, str]], *ok: int) -> Any:
        status, payload, _ = result
        if status in ok:
            return payload
        message = payload.get("message", "") if isinstance(payload, dict) else ""
        codes = [e.get("code") for e in payload.get("errors", [])] if isinstance(payload, dict) else []
        hint = (
            "check GITHUB_TOKEN and its permissions (contents: write)"
            if status in (401, 403, 404)
            else "see GitHub's message"
        )
        detail = f" ({', '.join(c for c in codes if c)})" if any(codes) else ""
        raise GitHubError(f"GitHub refused to {what}: {status} {message}{detail}", hint=hint)

    def find_release(self, tag: str) -> dict[str, Any] | None:
        """The release for a tag, drafts included (the by-tag endpoint hides drafts)."""
        url: str | None = f"{self.api}/repos/{self.repo}/releases?per_page=100"
        while url:
            result = self._request("GET", url)
            releases = self._expect("list releases", result, 200)
            for release in releases:
                if release.get("tag_name") == tag:
                    return dict(release)
            url = _next_link(result[2].get("link", ""))
        return None

    def latest_release(self) -> dict[str, Any] | None:
        """GitHub's latest release (what …/releases/latest/download/ serves), None when there is none."""
        result = self._request("GET", f"{self.api}/repos/{self.repo}/releases/latest")
        if result[0] == 404:
            return None
        return dict(self._expect("read the latest release", result, 200))

    def releases(self) -> list[dict[str, Any]]:
        """Every release, newest first (as GitHub lists them), drafts included."""
        return self._all_pages(f"{self.api}/repos/{self.repo}/releases?per_page=100", "list releases")

    def download_asset(self, asset_id: int, out: Path) -> Path:
        """An asset's bytes. GitHub answers with a redirect to its storage, which
        must not receive the token: the redirect is followed without it."""

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        request = urllib.request.Request(f"{self.api}/repos/{self.repo}/releases/assets/{asset_id}")
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/octet-stream")
        request.add_header("X-GitHub-Api-Version", API_VERSION)
        request.add_header("User-Agent", "toolchain-release")
        try:
            try:
                with urllib.request.build_opener(NoRedirect).open(request, timeout=300) as response:
                    out.write_bytes(response.read())
                    return out
            except urllib.error.HTTPError as exc:
                location = exc.headers.get("Location") if exc.code in (301, 302, 303, 307, 308) else None
                if not location:
                    raise
            plain = urllib.request.Request(location, headers={"User-Agent": "toolchain-release"})
            with urllib.request.urlopen(plain, timeout=300) as response:
                out.write_bytes(response.read())
                return out
        except (urllib.error.URLError, OSError) as exc:
            raise GitHubError(f"cannot download release asset {asset_id}: {exc}", hint="check the network") from exc

    def create_release(self, tag: str, name: str, body: str, prerelease: bool) -> dict[str, Any]:
        data = json.dumps({"tag_name": tag, "name": name, "body": body, "draft": True, "prerelease": prerelease})
        result = self._request("POST", f"{self.api}/repos/{self.repo}/releases", data.encode())
        return dict(self._expect(f"create the release for {tag}", result, 201))

    def update_release(self, release_id: int, **fields: Any) -> dict[str, Any]:
        result = self._request(
            "PATCH", f"{self.api}/repos/{self.repo}/releases/{release_id}", json.dumps(fields).encode()
        )
        return dict(self._expect("update the release", result, 200))

    def list_assets(self, release_id: int) -> list[dict[str, Any]]:
        url = f"{self.api}/repos/{self.repo}/releases/{release_id}/assets?per_page=100"
        return self._all_pages(url, "list release assets")

    def _all_pages(self, first: str, what: str) -> list[dict[str, Any]]:
        """Every item of a paged GitHub list, following its Link: rel="next" headers."""
        items: list[dict[str, Any]] = []
        url: str | None = first
        while url:
            result = self._request("GET", url)
            items += self._expect(what, result, 200)
            url = _next_link(result[2].get("link", ""))
        return items

    def upload_asset(self, release_id: int, path: Path, content_type: str, name: str = "") -> dict[str, Any]:
        query = urllib.parse.urlencode({"name": name or path.name})
        url = f"{self.uploads}/repos/{self.repo}/releases/{release_id}/assets?{query}"
        result = self._request("POST", url, path.read_bytes(), content_type)
        return dict(self._expect(f"upload {name or path.name}", result, 201))

    def delete_asset(self, asset_id: int) -> None:
        result = self._request("DELETE", f"{self.api}/repos/{self.repo}/releases/assets/{asset_id}")
        self._expect("delete an asset", result, 204)


def _next_link(header: str) -> str | None:
    for part in header.split(","):
        match = re.search(r'<([^>]+)>;\s*rel="next"', part)
        if match:
            return match.group(1)
    return None


@dataclass(frozen=True)
class GitHubTarget:
    """Where a release goes on GitHub: the [github] settings, read once."""

    repository: str
    api_url: str = "https://api.github.com"
    uploads_url: str = "https://uploads.github.com"
    token_env: str = "GITHUB_TOKEN"
    tag_template: str = "v{version}"

    @classmethod
    def from_settings(cls, settings: GitHubSettings) -> GitHubTarget:
        """The [github] table (already checked by its model); a broken tag
        template fails here, before anything is verified or sent."""
        target = cls(
            repository=settings.repository,
            api_url=settings.api_url,
            uploads_url=settings.uploads_url,
            token_env=settings.token_env,
            tag_template=settings.tag_template,
        )
        target.tag("0.0.0", "app")
        return target

    def tag(self, version: str, app: str) -> str:
        """The release tag of a version: the one place tag-template is applied."""
        try:
            return self.tag_template.format(version=version, app=app)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"[github] tag-template {self.tag_template!r} is not a valid template",
                hint='use the placeholders {version} and {app}, e.g. "v{version}"',
            ) from exc

    def version_of(self, tag: str, app: str) -> str | None:
        """The version a tag of this template names (None: the tag does not follow it)."""
        pattern = re.escape(self.tag_template).replace(r"\{version\}", "(?P<version>.+?)")
        pattern = pattern.replace(r"\{app\}", re.escape(app))
        match = re.fullmatch(pattern, tag)
        return match.group("version") if match and "version" in match.groupdict() else None

    def where(self, version: str, app: str) -> str:
        """OWNER/NAME@TAG, as plans and results name a release."""
        prerelease = " (prerelease)" if is_prerelease(version) else ""
        return f"{self.repository or 'OWNER/NAME'}@{self.tag(version, app)}{prerelease}"


def download_github(client: GitHubClient, release: dict[str, Any], into: Path, names: tuple[str, ...] = ()) -> Path:
    """The assets of one GitHub release (or only `names`) into a folder."""
    into.mkdir(parents=True, exist_ok=True)
    for asset in client.list_assets(int(release["id"])):
        if asset.get("state", "uploaded") != "uploaded" or (names and asset["name"] not in names):
            continue
        client.download_asset(int(asset["id"]), into / asset["name"])
    return into
