"""One-way link delay from geography (`delay: geo`): pure, imports nothing of the project.

delay = route length / speed of light in fibre, where

* the great-circle distance comes from the two nodes' latitude and longitude (haversine
  on a sphere of the Earth's mean radius, 6371.0088 km; the ellipsoid would change it by
  under 0.5%);
* light in fibre travels at c / n with n = 1.4682, the group index of standard single-mode
  fibre (ITU-T G.652, e.g. Corning SMF-28) at 1550 nm: 204,190 km/s, i.e. 4.897 us/km (the
  "about 5 us/km" of ITU-T G.114's planning table);
* the route factor, because cables follow roads, railways and rights of way, not great
  circles, is the ITU-T rule for a route whose real length is unknown (ITU-T G.826 §6.2 and
  Y.1541's delay computation, from the air-route distance d): 1.5 x d below 1000 km,
  1500 km from 1000 to 1200 km, 1.25 x d from 1200 km on. It is applied per link, since
  each substrate link is its own span of fibre between two PoPs.

For Abilene (topologies/abilene.yaml) the least-cost Washington-Seattle path (IGP costs:
Washington, Atlanta, Indianapolis, Kansas City, Denver, Seattle; cost 48) is 4,824 km of
great circles (the two cities are 3,736 km apart), 6,826 km of route, so a round trip of
66.9 ms against VINI's measured 74 ms. The remaining ~7 ms (11%) is what the model leaves
out: Abilene's circuits ran on Qwest's fibre, laid along railway rights of way, which can
be longer than the ITU allowance where they cross mountains (Denver-Seattle); the IP path
VINI measured need not be the one this topology's IGP costs choose; and a measured RTT
also crosses regenerators, router queues and the end hosts (PL-VINI forwarded in user
space). tests/unit/test_geo.py recomputes these figures from the topology file.
"""
from __future__ import annotations

import math

EARTH_MEAN_RADIUS_KM = 6371.0088  # IUGG mean radius R1
SPEED_OF_LIGHT_KM_S = 299_792.458
FIBRE_GROUP_INDEX = 1.4682  # G.652 single-mode fibre at 1550 nm
FIBRE_US_PER_KM = FIBRE_GROUP_INDEX / SPEED_OF_LIGHT_KM_S * 1e6  # 4.897 us/km


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two points given in degrees (haversine)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_MEAN_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def route_km(air_km: float) -> float:
    """The ITU-T route length for an air-route (great-circle) distance."""
    if air_km < 1000:
        return 1.5 * air_km
    if air_km < 1200:
        return 1500.0
    return 1.25 * air_km


def fibre_delay_us(route_length_km: float) -> float:
    """One-way propagation time over a fibre route of this length."""
    return route_length_km * FIBRE_US_PER_KM


def link_delay_us(a: tuple[float, float], b: tuple[float, float]) -> int:
    """One-way delay of a link between two (latitude, longitude) points, whole microseconds."""
    return round(fibre_delay_us(route_km(great_circle_km(*a, *b))))


def path_delay_us(points: list[tuple[float, float]]) -> int:
    """One-way delay along consecutive links through these points (each link rounded as
    the links themselves would be declared)."""
    return sum(link_delay_us(a, b) for a, b in zip(points, points[1:]))
