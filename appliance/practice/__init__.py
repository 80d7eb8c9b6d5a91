"""The practice domain: staff, patients, consent, appointments, access codes, audit, retention."""
