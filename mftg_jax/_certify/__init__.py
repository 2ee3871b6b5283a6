"""Certificates of the shared core: one Nash-gap type, the single-agent best-response solver."""

from ._certificate import certificate as certificate, NashCertificate as NashCertificate
