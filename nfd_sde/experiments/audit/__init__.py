"""audit: every claim of the paper measured at one scale, each with its verdict, in one report
(`run_audit`, the `audit` command; docs/audit.md). A claim is a final `AbstractClaim` that runs
the other wings' experiments at the sizes of an `AuditScale`."""

from ._audit import (
    AUDIT as AUDIT,
    CLAIMS as CLAIMS,
    audit_configs as audit_configs,
    run_audit as run_audit,
)
from ._claims import AbstractClaim as AbstractClaim, AuditContext as AuditContext
from ._scales import SCALES as SCALES, AuditScale as AuditScale

# this wing's commands, in the order `nfd-sde --help` lists them
COMMANDS = (AUDIT,)
