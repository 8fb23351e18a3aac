"""The audit chain: every insert into a credit-file table is chained into audit_log by a trigger
(migration 0001). `verify` proves the chain intact and every audited row unchanged;
`write_checkpoint` signs its length and head outside the database, and `verify_checkpoints`
checks the chain against those signatures."""

import base64
import contextlib
import json
import os
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from registry.models import APPEND_ONLY_TABLES
from registry.settings import Settings

# As the trigger takes it (migration 0009: columns added later are left out while NULL).
_ROW_DIGEST = "geocredit_row_digest(to_jsonb(t))"


@dataclass
class AuditReport:
    entries: int = 0
    problems: list[str] = field(default_factory=list)  # the first `max_problems` of them
    problem_count: int = 0
    max_problems: int = 100

    @property
    def intact(self) -> bool:
        return self.problem_count == 0

    def add(self, problem: str) -> None:
        self.problem_count += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(problem)


def verify(conn: sa.Connection, max_problems: int = 100) -> AuditReport:
    report = AuditReport(max_problems=max_problems)
    # Digests were taken in UTC; take them the same way.
    conn.execute(sa.text("SET LOCAL timezone = 'UTC'"))
    report.entries = conn.execute(sa.text("SELECT count(*) FROM audit_log")).scalar_one()
    broken = conn.execute(
        sa.text(
            """
            SELECT id, table_name, row_id, prev_hash = coalesce(lag(hash) OVER w, '') AS linked,
                   hash = geocredit_audit_hash(prev_hash, table_name, row_id, row_digest, actor, at)
                       AS sealed
            FROM audit_log WINDOW w AS (ORDER BY id)
            """
        )
    )
    for entry_id, table, row_id, linked, sealed in broken:
        if not linked:
            report.add(
                f"audit entry {entry_id} ({table} {row_id}) does not follow the entry before it: "
                "an entry was removed or inserted"
            )
        if not sealed:
            report.add(f"audit entry {entry_id} ({table} {row_id}) was altered")
    for table in APPEND_ONLY_TABLES:
        rows = conn.execute(
            sa.text(
                f"""
                SELECT a.id, a.row_id, t.id, a.row_digest = {_ROW_DIGEST}
                FROM (SELECT id, row_id, row_digest FROM audit_log WHERE table_name = :t) a
                FULL JOIN {table} t ON t.id = a.row_id
                WHERE a.id IS NULL OR t.id IS NULL OR a.row_digest <> {_ROW_DIGEST}
                """
            ),
            {"t": table},
        )
        for entry_id, audited_row, row_id, _ in rows:
            if entry_id is None:
                report.add(f"{table} row {row_id} has no audit entry")
            elif row_id is None:
                report.add(f"{table} row {audited_row} was removed")
            else:
                report.add(f"{table} row {row_id} was altered after it was recorded")
    return report


# ---------------------------------------------------------------- signed checkpoints
# The chain proves that no entry was changed or removed *between* others. A database superuser
# could still remove the newest entries, or rewrite one and re-chain every entry after it. So the
# chain's length and head hash are signed (Ed25519) now and then, outside the database: a later
# `verify` checks the chain against every checkpoint (Certificate Transparency's signed tree heads
# are the model). Copies kept off the machine make the guarantee independent of it.

CHECKPOINTS_FILE = Path("audit") / "checkpoints.jsonl"  # under the data folder
KEY_FILE = Path("audit") / "signing.key"  # the default; GEOCREDIT_AUDIT_KEY_FILE overrides
_SIGNED_PREFIX = b"geocredit audit checkpoint v1\n"


class CheckpointError(RuntimeError):
    """A checkpoint could not be written (no key, a key that is not one)."""


@dataclass(frozen=True)
class Checkpoint:
    entries: int  # audit entries in the chain when signed
    head_id: int | None  # the newest entry then (None: an empty chain)
    head_hash: str
    at: datetime
    key: str  # the signer's public key, base64 (raw 32 bytes)
    signature: str  # base64

    def signed_bytes(self) -> bytes:
        fields = {
            "at": self.at.isoformat(),
            "entries": self.entries,
            "headHash": self.head_hash,
            "headId": self.head_id,
        }
        return _SIGNED_PREFIX + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    def line(self) -> str:
        return json.dumps(
            {
                "entries": self.entries,
                "headId": self.head_id,
                "headHash": self.head_hash,
                "at": self.at.isoformat(),
                "key": self.key,
                "signature": self.signature,
            }
        )

    @classmethod
    def from_line(cls, text: str) -> "Checkpoint":
        data = json.loads(text)
        return cls(
            entries=int(data["entries"]),
            head_id=None if data["headId"] is None else int(data["headId"]),
            head_hash=str(data["headHash"]),
            at=datetime.fromisoformat(data["at"]),
            key=str(data["key"]),
            signature=str(data["signature"]),
        )


def key_path(settings: Settings) -> Path:
    return settings.audit_key_file or settings.data_path / KEY_FILE


def signing_key(settings: Settings, create: bool = False) -> Ed25519PrivateKey | None:
    """The checkpoints' signing key; with `create`, the default one is made on first use. A
    GEOCREDIT_AUDIT_KEY_FILE that does not exist is an error, never replaced by a new key."""
    path = key_path(settings)
    if settings.audit_key_file is not None and not path.exists():
        raise CheckpointError(f"GEOCREDIT_AUDIT_KEY_FILE {path} does not exist")
    return load_key(path, create)


def load_key(path: Path, create: bool = False) -> Ed25519PrivateKey | None:
    """The signing key in `path` (PEM, PKCS #8); with `create`, a new one is made there first
    when there is none (mode 0600). None when absent and not created."""
    if not path.exists():
        if not create:
            return None
        _create_key(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path} does not hold an unencrypted PEM signing key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def _create_key(path: Path) -> None:
    """Written in full beside `path`, then linked into place: two processes creating it at once
    end up with one key, and nobody reads half of one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def public_key_text(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def _head(conn: sa.Connection) -> tuple[int, int | None, str, datetime]:
    """(entries, newest id, its hash, now), in one snapshot."""
    entries, head_id, head_hash, now = conn.execute(
        sa.text(
            """
            SELECT (SELECT count(*) FROM audit_log), h.id, coalesce(h.hash, ''), clock_timestamp()
            FROM (SELECT 1) one
            LEFT JOIN (SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1) h ON true
            """
        )
    ).one()
    return entries, head_id, head_hash, now


def write_checkpoint(conn: sa.Connection, data_dir: Path, key: Ed25519PrivateKey) -> Checkpoint:
    """Sign the chain's length and head and append the checkpoint to the data folder's file."""
    entries, head_id, head_hash, now = _head(conn)
    unsigned = Checkpoint(entries, head_id, head_hash, now.astimezone(UTC), "", "")
    signature = base64.b64encode(key.sign(unsigned.signed_bytes())).decode()
    checkpoint = replace(unsigned, key=public_key_text(key), signature=signature)
    path = data_dir / CHECKPOINTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # One write with O_APPEND: lines of writers at the same time never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (checkpoint.line() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return checkpoint


def read_checkpoints(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every non-blank line; none when the file does not exist."""
    if not path.exists():
        return []
    lines = path.read_text(errors="replace").splitlines()
    return [(n, text) for n, text in enumerate(lines, 1) if text.strip()]


def verify_checkpoints(
    conn: sa.Connection,
    lines: list[tuple[int, str]],
    public_key: Ed25519PublicKey | None,
    report: AuditReport,
) -> int:
    """Check the chain against each checkpoint line: its signature (by `public_key`), and that
    the entry it signed as the head is still there, with the same hash and as many entries up to
    it. Problems go to `report`; returns the number of checkpoints that hold."""
    checkpoints: list[tuple[int, Checkpoint]] = []
    for n, text in lines:
        try:
            checkpoint = Checkpoint.from_line(text)
        except (ValueError, KeyError, TypeError):
            report.add(f"checkpoint line {n} is not a checkpoint")
            continue
        when = f"checkpoint line {n} ({checkpoint.at.isoformat(timespec='seconds')})"
        if public_key is None:
            report.add(f"{when} cannot be checked: no signing key to check it with")
            continue
        try:
            public_key.verify(base64.b64decode(checkpoint.signature), checkpoint.signed_bytes())
        except (InvalidSignature, ValueError):
            report.add(f"{when} is not signed by this registry's key: it was altered or forged")
            continue
        checkpoints.append((n, checkpoint))
    heads = [c.head_id for _, c in checkpoints if c.head_id is not None]
    found = {
        row.id: (row.hash, row.position)
        for row in conn.execute(
            sa.text(
                """
                SELECT id, hash, position FROM (
                    SELECT id, hash, row_number() OVER (ORDER BY id) AS position FROM audit_log
                ) a WHERE id = ANY(:heads)
                """
            ),
            {"heads": heads},
        )
    }
    holding = 0
    for n, c in checkpoints:
        when = f"checkpoint line {n} ({c.at.isoformat(timespec='seconds')})"
        if c.head_id is None:
            holding += 1
            continue
        if c.head_id not in found:
            report.add(
                f"{when}: audit entry {c.head_id}, the newest of its {c.entries} entries, is "
                "gone: entries were removed"
            )
        elif found[c.head_id][0] != c.head_hash:
            report.add(
                f"{when}: audit entry {c.head_id} no longer has the hash signed then: the chain "
                "up to it was rewritten"
            )
        elif found[c.head_id][1] != c.entries:
            report.add(
                f"{when}: {found[c.head_id][1]} entries up to audit entry {c.head_id}, "
                f"{c.entries} when signed: entries were removed or inserted"
            )
        else:
            holding += 1
    return holding
