"""Certificates of the shared core: one Nash-gap type, the single-agent best-response solver."""

from ._best_response import (
    best_response_values as best_response_values,
    check_best_response as check_best_response,
    PlayerProblem as PlayerProblem,
)
from ._certificate import certificate as certificate, NashCertificate as NashCertificate
