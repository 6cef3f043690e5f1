"""vispd: virtual ISPs on a shared substrate (PlanetLab Backbone style).

The application layer: commands that load, compile, observe and apply through the backends (I/O).
"""
