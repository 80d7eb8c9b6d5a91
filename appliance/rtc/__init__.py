"""Real-time communication: signaling hub, waiting room, ICE/TURN credentials, uplinks.

Empty until the call issue lands. The seam it plugs into: ``AppointmentBook.add_state_listener``
(appointment state changes) and ``AppointmentBook.admit/end`` (only the doctor, R2/O3/R3).
"""
