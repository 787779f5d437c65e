"""The audit trail: who did what, to which instance and object, with what result."""

from kmipd.audit.log import AuditLog, AuditUnavailable

__all__ = ["AuditLog", "AuditUnavailable"]
