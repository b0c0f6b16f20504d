"""From a user's own machine to a shared dataset, safely: find sessions (:mod:`~teich.privacy.extract`),
redact secrets and personal data (:mod:`~teich.privacy.anonymize`, with :mod:`~teich.privacy.detect`), and
publish behind a secret gate (:mod:`~teich.privacy.publish`)."""
