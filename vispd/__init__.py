"""vispd: virtual ISPs on a shared substrate (PlanetLab Backbone style)."""
