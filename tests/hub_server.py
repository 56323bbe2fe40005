"""A local HTTP stand-in for the Hugging Face Hub, enough for what ``isobench.hub`` asks of huggingface_hub.

It holds dataset repositories in memory, each a list of commits (oid, summary, files: {path: bytes}),
and answers the endpoints the real SDK calls for ``dataset_info``, ``list_repo_tree`` (and so
``list_repo_files``), ``hf_hub_download``, ``create_repo`` and ``create_commit``, with the response
shapes and ``X-Error-Code`` headers of huggingface_hub 2.4.0. Uploads are always answered with
upload mode "regular", so file contents travel base64-encoded inside the commit (no LFS, no Xet).

Every request is kept (method, path, whether it carried the right token, whether it was a write)
so that tests can check, say, that a dry run wrote nothing. A request with a wrong token gets 401
"Invalid credentials in Authorization header", as on the Hub; a write without a token gets 401.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlsplit

import yaml
from local_server import LocalServer

GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"
REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"
ROUTES = [  # (method, pattern, handler name); patterns match the unquoted path
    ("POST", r"/api/repos/create", "create_repo"),
    ("GET", r"/api/whoami-v2", "whoami"),
    ("POST", r"/api/validate-yaml", "validate_yaml"),
    ("GET", rf"/api/datasets/{REPO}(?:/revision/(?P<rev>[^/]+))?", "repo_info"),
    ("GET", rf"/api/datasets/{REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?", "tree"),
    ("POST", rf"/api/datasets/{REPO}/preupload/(?P<rev>[^/]+)", "preupload"),
    ("POST", rf"/api/datasets/{REPO}/commit/(?P<rev>[^/]+)", "commit"),
    ("HEAD", rf"/datasets/{REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
    ("GET", rf"/datasets/{REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
]


def git_oid(content: bytes) -> str:
    """The git blob id of ``content`` (what the Hub reports as a file's oid)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Commit:
    oid: str
    summary: str
    files: dict[str, bytes]


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict = field(default_factory=dict)


def json_reply(payload, status: int = 200) -> Reply:
    return Reply(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})


class FakeHub(LocalServer):
    """The stand-in: `start()` it, point HF_ENDPOINT at `url`, give the SDK `token`; `stop()` it after."""

    def __init__(self, token: str = "hf_stand_in_token"):
        self.token = token
        self.repos: dict[str, list[Commit]] = {}  # dataset repo id -> its commits, oldest first
        self.private: set[str] = set()  # the repos created private
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                hub._serve(self)

            do_HEAD = do_POST = do_GET

        self._listen(Handler)

    # --- test helpers -------------------------------------------------------------------------

    def files(self, repo_id: str) -> dict[str, bytes]:
        """The files at the head of ``repo_id``."""
        return dict(self.repos[repo_id][-1].files)

    def commits(self, repo_id: str) -> list[Commit]:
        return list(self.repos.get(repo_id, []))

    def writes(self) -> list[dict]:
        return [r for r in self.requests if r["write"]]

    def add_commit(self, repo_id: str, files: dict[str, bytes], summary: str = "seed") -> str:
        """Make a commit that sets ``files`` (creating the repo if needed), as a test's starting state."""
        with self._lock:
            if repo_id not in self.repos:
                self._create(repo_id)
            return self._new_commit(repo_id, {**self.repos[repo_id][-1].files, **files}, summary)

    # --- state --------------------------------------------------------------------------------
    def _create(self, repo_id: str) -> None:
        self.repos[repo_id] = []
        self._new_commit(repo_id, {".gitattributes": GITATTRIBUTES}, "initial commit")

    def _new_commit(self, repo_id: str, files: dict[str, bytes], summary: str) -> str:
        commits = self.repos[repo_id]
        oid = hashlib.sha1(f"{repo_id}:{len(commits)}:{summary}".encode()).hexdigest()
        commits.append(Commit(oid, summary, files))
        return oid

    def _snapshot(self, repo_id: str, rev: str) -> Commit:
        if repo_id not in self.repos:
            raise HubError(404, "Repository not found", "RepoNotFound")
        commits = self.repos[repo_id]
        if rev == "main":
            return commits[-1]
        for commit in commits:
            if len(rev) >= 5 and commit.oid.startswith(rev):
                return commit
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    # --- HTTP ---------------------------------------------------------------------------------
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        path, query = unquote(url.path), parse_qs(url.query)
        body = handler.rfile.read(int(handler.headers.get("Content-Length", 0) or 0))
        auth = handler.headers.get("Authorization")
        authorized = auth == f"Bearer {self.token}"
        write = handler.command == "POST"
        with self._lock:
            self.requests.append(
                {"method": handler.command, "path": path, "authorized": authorized, "write": write}
            )
            try:
                if auth is not None and not authorized:
                    raise HubError(401, "Invalid credentials in Authorization header")
                if write and not authorized:
                    raise HubError(401, "You must be authenticated to do this")
                reply = self._route(handler.command, path, query, body)
            except HubError as exc:
                reply = json_reply({"error": exc.message}, exc.status)
                reply.headers["X-Error-Message"] = exc.message
                if exc.code:
                    reply.headers["X-Error-Code"] = exc.code
        handler.send_response(reply.status)
        for key, value in {"Content-Length": str(len(reply.body)), **reply.headers}.items():
            handler.send_header(key, value)
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(reply.body)

    def _route(self, method: str, path: str, query: dict, body: bytes) -> Reply:
        for route_method, pattern, name in ROUTES:
            match = re.fullmatch(pattern, path)
            if method == route_method and match:
                return getattr(self, f"_on_{name}")(query=query, body=body, **match.groupdict())
        raise HubError(404, f"the stand-in does not implement {method} {path}")

    def _on_create_repo(self, query, body) -> Reply:
        payload = json.loads(body)
        if payload.get("type") != "dataset":
            raise HubError(400, "the stand-in only holds dataset repos")
        repo_id = f"{payload['organization']}/{payload['name']}"
        url = f"{self.url}/datasets/{repo_id}"
        if repo_id in self.repos:
            return json_reply({"error": "You already created this dataset repo", "url": url}, 409)
        self._create(repo_id)
        if payload.get("private") or payload.get("visibility") == "private":
            self.private.add(repo_id)
        return json_reply({"url": url, "name": repo_id, "id": repo_id})

    def _on_whoami(self, query, body) -> Reply:
        """Who the token is (`hf auth login` asks before it saves a token)."""
        if not self.requests[-1]["authorized"]:
            raise HubError(401, "Invalid credentials in Authorization header")
        return json_reply(
            {
                "type": "user",
                "name": "stand-in",
                "auth": {"type": "access_token", "accessToken": {"displayName": "tests", "role": "write"}},
            }
        )

    def _on_validate_yaml(self, query, body) -> Reply:
        """The Hub checks a README's metadata before a commit that adds one: the stand-in only needs YAML."""
        content = json.loads(body)["content"]
        if content.startswith("---\n"):
            yaml.safe_load(content.split("---\n")[1])
        return json_reply({"errors": [], "warnings": []})

    def _on_repo_info(self, query, body, repo, rev=None) -> Reply:
        commit = self._snapshot(repo, rev or "main")
        return json_reply(
            {
                "id": repo,
                "_id": repo,
                "sha": commit.oid,
                "private": repo in self.private,
                "siblings": [{"rfilename": p} for p in sorted(commit.files)],
            }
        )

    def _on_tree(self, query, body, repo, rev, path=None) -> Reply:
        files = self._snapshot(repo, rev).files
        prefix = f"{path.strip('/')}/" if path else ""
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        entries = {}
        for name, content in files.items():
            if not name.startswith(prefix):
                continue
            parts = name[len(prefix) :].split("/")
            for depth in range(1, len(parts) if recursive else 1):  # folders on the way
                folder = prefix + "/".join(parts[:depth])
                entries[folder] = {
                    "type": "directory",
                    "oid": git_oid(folder.encode()),
                    "size": 0,
                    "path": folder,
                }
            if recursive or len(parts) == 1:
                entries[name] = {"type": "file", "oid": git_oid(content), "size": len(content), "path": name}
            else:
                folder = prefix + parts[0]
                entries[folder] = {
                    "type": "directory",
                    "oid": git_oid(folder.encode()),
                    "size": 0,
                    "path": folder,
                }
        if prefix and not entries:
            raise HubError(404, f"{path} does not exist", "EntryNotFound")
        return json_reply([entries[k] for k in sorted(entries)])

    def _on_preupload(self, query, body, repo, rev) -> Reply:
        files = self._snapshot(repo, rev).files
        answer = [
            {
                "path": f["path"],
                "uploadMode": "regular",
                "shouldIgnore": False,
                "oid": git_oid(files[f["path"]]) if f["path"] in files else None,
            }
            for f in json.loads(body)["files"]
        ]
        return json_reply({"files": answer, "commitOid": self.repos[repo][-1].oid})

    def _on_commit(self, query, body, repo, rev) -> Reply:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0]["key"] != "header":
            raise HubError(400, "the commit payload must start with a header line")
        header = lines[0]["value"]
        head = self._snapshot(repo, rev)
        if header.get("parentCommit") and not head.oid.startswith(header["parentCommit"]):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(head.files)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, f"unsupported encoding {value.get('encoding')!r}")
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
            elif key == "deletedFolder":
                files = {p: c for p, c in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
            else:  # lfsFile: the stand-in never asks for LFS uploads
                raise HubError(400, f"the stand-in does not accept {key!r} operations")
        oid = self._new_commit(repo, files, header["summary"])
        return json_reply(
            {
                "success": True,
                "commitOid": oid,
                "commitUrl": f"{self.url}/datasets/{repo}/commit/{oid}",
                "hookOutput": "",
            }
        )

    def _on_resolve(self, query, body, repo, rev, path) -> Reply:
        commit = self._snapshot(repo, rev)
        if path not in commit.files:
            raise HubError(404, "Entry not found", "EntryNotFound")
        content = commit.files[path]
        return Reply(
            200,
            content,
            {
                "ETag": f'"{git_oid(content)}"',
                "X-Repo-Commit": commit.oid,
                "Content-Type": "application/octet-stream",
            },
        )
