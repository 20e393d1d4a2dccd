"""Weather: geocoding, current conditions, forecasts, air quality and alerts for six cities.

Seed data: Seattle, New York, London, Tokyo, Sydney and Cape Town with coordinates,
time zones, a fixed observation for 2026-03-02 08:00 local time, a 7-day forecast
pattern, air-quality readings and three active alerts (a wind advisory in Seattle, a heat
warning in Sydney and a fire-danger warning in Cape Town). Coordinates resolve to the
nearest covered city within 50 km. Everything is deterministic and read-only, so all
``WeatherServer`` instances return the same data.
"""

import copy
import datetime as _dt
import math
from typing import Literal, TypedDict

from astra.data.servers._tables import one_of
from astra.errors import ToolCallError

TODAY = "2026-03-02"

Units = Literal["metric", "imperial"]
Severity = Literal["minor", "moderate", "severe", "extreme"]
_SEVERITIES = ("minor", "moderate", "severe", "extreme")

_CITIES: list[dict] = [
    {"city": "Seattle", "country": "US", "latitude": 47.6062, "longitude": -122.3321,
     "timezone": "America/Los_Angeles",
     "now": {"temp_c": 7.5, "feels_like_c": 4.9, "humidity": 86, "wind_kph": 31.0, "wind_direction": "SSW",
             "condition": "light rain", "precipitation_mm": 1.2, "uv_index": 1},
     "forecast": {"high": 10.0, "low": 4.0, "conditions": ["light rain", "rain", "cloudy", "partly cloudy",
                                                           "light rain", "cloudy", "sunny"],
                  "precip": [80, 90, 40, 20, 70, 35, 10]},
     "air": {"aqi": 28, "pm2_5": 6.1, "pm10": 11.0, "o3": 41.0, "dominant_pollutant": "o3"}},
    {"city": "New York", "country": "US", "latitude": 40.7128, "longitude": -74.0060,
     "timezone": "America/New_York",
     "now": {"temp_c": 1.0, "feels_like_c": -3.4, "humidity": 58, "wind_kph": 22.0, "wind_direction": "NW",
             "condition": "partly cloudy", "precipitation_mm": 0.0, "uv_index": 2},
     "forecast": {"high": 5.0, "low": -2.0, "conditions": ["partly cloudy", "sunny", "snow", "cloudy",
                                                          "sunny", "sunny", "rain"],
                  "precip": [10, 5, 75, 30, 5, 0, 60]},
     "air": {"aqi": 54, "pm2_5": 14.2, "pm10": 24.0, "o3": 30.0, "dominant_pollutant": "pm2_5"}},
    {"city": "London", "country": "GB", "latitude": 51.5074, "longitude": -0.1278, "timezone": "Europe/London",
     "now": {"temp_c": 8.0, "feels_like_c": 5.6, "humidity": 80, "wind_kph": 19.0, "wind_direction": "SW",
             "condition": "cloudy", "precipitation_mm": 0.2, "uv_index": 1},
     "forecast": {"high": 11.0, "low": 5.0, "conditions": ["cloudy", "light rain", "light rain", "cloudy",
                                                          "partly cloudy", "rain", "cloudy"],
                  "precip": [30, 65, 70, 35, 15, 85, 40]},
     "air": {"aqi": 42, "pm2_5": 9.8, "pm10": 17.5, "o3": 35.0, "dominant_pollutant": "pm2_5"}},
    {"city": "Tokyo", "country": "JP", "latitude": 35.6762, "longitude": 139.6503, "timezone": "Asia/Tokyo",
     "now": {"temp_c": 9.5, "feels_like_c": 8.1, "humidity": 45, "wind_kph": 11.0, "wind_direction": "N",
             "condition": "sunny", "precipitation_mm": 0.0, "uv_index": 3},
     "forecast": {"high": 13.0, "low": 4.0, "conditions": ["sunny", "sunny", "partly cloudy", "rain",
                                                          "cloudy", "sunny", "partly cloudy"],
                  "precip": [0, 5, 20, 80, 40, 5, 15]},
     "air": {"aqi": 61, "pm2_5": 17.9, "pm10": 30.1, "o3": 38.0, "dominant_pollutant": "pm2_5"}},
    {"city": "Sydney", "country": "AU", "latitude": -33.8688, "longitude": 151.2093,
     "timezone": "Australia/Sydney",
     "now": {"temp_c": 31.0, "feels_like_c": 33.5, "humidity": 55, "wind_kph": 17.0, "wind_direction": "NE",
             "condition": "sunny", "precipitation_mm": 0.0, "uv_index": 11},
     "forecast": {"high": 33.0, "low": 21.0, "conditions": ["sunny", "sunny", "thunderstorms", "partly cloudy",
                                                           "sunny", "cloudy", "sunny"],
                  "precip": [5, 0, 60, 25, 5, 30, 0]},
     "air": {"aqi": 35, "pm2_5": 7.5, "pm10": 16.0, "o3": 52.0, "dominant_pollutant": "o3"}},
    {"city": "Cape Town", "country": "ZA", "latitude": -33.9249, "longitude": 18.4241,
     "timezone": "Africa/Johannesburg",
     "now": {"temp_c": 24.0, "feels_like_c": 24.0, "humidity": 48, "wind_kph": 38.0, "wind_direction": "SE",
             "condition": "windy", "precipitation_mm": 0.0, "uv_index": 9},
     "forecast": {"high": 27.0, "low": 16.0, "conditions": ["windy", "sunny", "sunny", "windy", "partly cloudy",
                                                           "sunny", "sunny"],
                  "precip": [0, 0, 5, 0, 10, 0, 0]},
     "air": {"aqi": 22, "pm2_5": 4.2, "pm10": 14.0, "o3": 36.0, "dominant_pollutant": "pm10"}},
]

# Day-to-day offsets (degrees C) applied to the base high/low of every city's forecast.
_OFFSETS = [0.0, 1.5, -1.0, 2.0, -2.5, 0.5, 1.0]

_ALERTS: list[dict] = [
    {"alert_id": "WA-901", "city": "Seattle", "event": "Wind Advisory", "severity": "moderate",
     "starts": "2026-03-02T10:00", "ends": "2026-03-03T04:00",
     "description": "South winds 40-55 km/h with gusts to 75 km/h; secure loose outdoor objects."},
    {"alert_id": "WA-902", "city": "Sydney", "event": "Heat Warning", "severity": "severe",
     "starts": "2026-03-02T09:00", "ends": "2026-03-04T20:00",
     "description": "Maximum temperatures of 33-38 C in western suburbs; limit outdoor activity at midday."},
    {"alert_id": "WA-903", "city": "Cape Town", "event": "Fire Danger Warning", "severity": "severe",
     "starts": "2026-03-02T06:00", "ends": "2026-03-03T18:00",
     "description": "Strong south-easterly winds and low humidity create very high fire danger on the peninsula."},
]


class Location(TypedDict):
    city: str
    country: str
    latitude: float
    longitude: float
    timezone: str


class CurrentWeather(TypedDict):
    city: str
    latitude: float
    longitude: float
    observed_at: str
    units: str
    temperature: float
    feels_like: float
    humidity_percent: int
    wind_speed: float
    wind_direction: str
    condition: str
    precipitation: float
    uv_index: int


class DailyForecast(TypedDict):
    date: str
    high: float
    low: float
    condition: str
    precipitation_chance_percent: int


class Forecast(TypedDict):
    city: str
    latitude: float
    longitude: float
    units: str
    days: list[DailyForecast]


class AirQuality(TypedDict):
    city: str
    latitude: float
    longitude: float
    aqi: int
    category: str
    dominant_pollutant: str
    pm2_5: float
    pm10: float
    o3: float
    health_advice: str


class WeatherAlert(TypedDict):
    alert_id: str
    city: str
    event: str
    severity: str
    starts: str
    ends: str
    description: str


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(a))


def _temp(c: float, units: str) -> float:
    return round(c * 9 / 5 + 32, 1) if units == "imperial" else round(c, 1)


def _aqi_category(aqi: int) -> tuple[str, str]:
    if aqi <= 50:
        return "good", "Air quality is satisfactory; no precautions needed."
    if aqi <= 100:
        return "moderate", "Unusually sensitive people should consider limiting prolonged outdoor exertion."
    if aqi <= 150:
        return "unhealthy for sensitive groups", "Children, older adults and people with lung disease should " \
                                                 "reduce prolonged outdoor exertion."
    return "unhealthy", "Everyone should reduce prolonged or heavy outdoor exertion."


class WeatherServer:
    """A weather service covering Seattle, New York, London, Tokyo, Sydney and Cape Town: turn a city
    name into coordinates, then get current conditions, a daily forecast of up to 7 days, air
    quality and active weather alerts for those coordinates."""

    name = "weather"
    title = "Weather"
    domain = "weather"

    def __init__(self) -> None:
        self._cities = copy.deepcopy(_CITIES)
        self._alerts = copy.deepcopy(_ALERTS)

    def _at(self, latitude: float, longitude: float) -> dict:
        try:
            lat, lon = float(latitude), float(longitude)
        except (TypeError, ValueError):
            raise ToolCallError(f"latitude and longitude must be numbers, got {latitude!r}, {longitude!r}.") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ToolCallError(
                f"Coordinates ({latitude}, {longitude}) are out of range: latitude must be in [-90, 90] and "
                f"longitude in [-180, 180]."
            )
        best = min(self._cities, key=lambda c: _km(lat, lon, c["latitude"], c["longitude"]))
        if _km(lat, lon, best["latitude"], best["longitude"]) > 50:
            covered = ", ".join(c["city"] for c in self._cities)
            raise ToolCallError(
                f"No weather station within 50 km of ({lat}, {lon}). Covered cities: {covered}; "
                f"use geocode_city to get their coordinates."
            )
        return best

    @staticmethod
    def _units(units: str) -> str:
        return one_of("units", units, ("metric", "imperial"))

    def geocode_city(self, city: str, country: str | None = None) -> Location:
        """Look up the coordinates and time zone of a city.

        Returns the latitude and longitude needed by the other weather tools.

        Args:
            city: City name, e.g. 'Tokyo' or 'Cape Town' (case-insensitive).
            country: Two-letter ISO country code to disambiguate, e.g. 'GB'.

        Returns:
            The city's location.
        """
        name = str(city or "").strip().lower()
        for c in self._cities:
            if c["city"].lower() == name and (country is None or c["country"] == str(country).strip().upper()):
                return {"city": c["city"], "country": c["country"], "latitude": c["latitude"],
                        "longitude": c["longitude"], "timezone": c["timezone"]}
        covered = ", ".join(f"{c['city']} ({c['country']})" for c in self._cities)
        where = f" in country {country!r}" if country is not None else ""
        raise ToolCallError(f"Unknown city {city!r}{where}. Covered cities: {covered}.")

    def get_current_weather(self, latitude: float, longitude: float, units: Units = "metric") -> CurrentWeather:
        """Get the current weather observation at a location.

        Returns temperature, feels-like temperature, humidity, wind, sky condition,
        precipitation of the last hour and UV index.

        Args:
            latitude: Latitude in decimal degrees, e.g. 35.6762, as returned by geocode_city.
            longitude: Longitude in decimal degrees, e.g. 139.6503, as returned by geocode_city.
            units: 'metric' (C, km/h, mm) or 'imperial' (F, mph, inches).

        Returns:
            The current observation.
        """
        c = self._at(latitude, longitude)
        units = self._units(units)
        n = c["now"]
        imperial = units == "imperial"
        return {"city": c["city"], "latitude": c["latitude"], "longitude": c["longitude"],
                "observed_at": f"{TODAY}T08:00", "units": units, "temperature": _temp(n["temp_c"], units),
                "feels_like": _temp(n["feels_like_c"], units), "humidity_percent": n["humidity"],
                "wind_speed": round(n["wind_kph"] / 1.609344, 1) if imperial else n["wind_kph"],
                "wind_direction": n["wind_direction"], "condition": n["condition"],
                "precipitation": round(n["precipitation_mm"] / 25.4, 2) if imperial else n["precipitation_mm"],
                "uv_index": n["uv_index"]}

    def get_forecast(self, latitude: float, longitude: float, days: int = 3, units: Units = "metric") -> Forecast:
        """Get the daily weather forecast for a location, starting today (2026-03-02).

        Returns one entry per day with the high and low temperature, sky condition and
        chance of precipitation.

        Args:
            latitude: Latitude in decimal degrees, e.g. 51.5074, as returned by geocode_city.
            longitude: Longitude in decimal degrees, e.g. -0.1278, as returned by geocode_city.
            days: Number of days to forecast (1-7).
            units: 'metric' (C) or 'imperial' (F).

        Returns:
            The forecast.
        """
        c = self._at(latitude, longitude)
        units = self._units(units)
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 7:
            raise ToolCallError(f"days must be an integer between 1 and 7, got {days!r}.")
        f = c["forecast"]
        start = _dt.date.fromisoformat(TODAY)
        out = []
        for i in range(days):
            out.append({"date": (start + _dt.timedelta(days=i)).isoformat(),
                        "high": _temp(f["high"] + _OFFSETS[i], units), "low": _temp(f["low"] + _OFFSETS[i], units),
                        "condition": f["conditions"][i], "precipitation_chance_percent": f["precip"][i]})
        return {"city": c["city"], "latitude": c["latitude"], "longitude": c["longitude"], "units": units,
                "days": out}

    def get_air_quality(self, latitude: float, longitude: float) -> AirQuality:
        """Get the current air quality at a location.

        Returns the US AQI value and category, the dominant pollutant, PM2.5, PM10 and ozone
        concentrations (ug/m3) and health advice.

        Args:
            latitude: Latitude in decimal degrees, e.g. 40.7128, as returned by geocode_city.
            longitude: Longitude in decimal degrees, e.g. -74.006, as returned by geocode_city.

        Returns:
            The air-quality reading.
        """
        c = self._at(latitude, longitude)
        a = c["air"]
        category, advice = _aqi_category(a["aqi"])
        return {"city": c["city"], "latitude": c["latitude"], "longitude": c["longitude"], "aqi": a["aqi"],
                "category": category, "dominant_pollutant": a["dominant_pollutant"], "pm2_5": a["pm2_5"],
                "pm10": a["pm10"], "o3": a["o3"], "health_advice": advice}

    def list_weather_alerts(self, latitude: float, longitude: float,
                            min_severity: Severity | None = None) -> list[WeatherAlert]:
        """List the active weather alerts at a location.

        Returns each alert's event, severity, validity window and instructions; an empty
        list means no alert is in effect.

        Args:
            latitude: Latitude in decimal degrees, e.g. -33.8688, as returned by geocode_city.
            longitude: Longitude in decimal degrees, e.g. 151.2093, as returned by geocode_city.
            min_severity: Only return alerts at least this severe.

        Returns:
            A list of active alerts.
        """
        c = self._at(latitude, longitude)
        if min_severity is not None and min_severity not in _SEVERITIES:
            raise ToolCallError(f"Unknown min_severity {min_severity!r}; use one of {', '.join(_SEVERITIES)}.")
        floor = _SEVERITIES.index(min_severity) if min_severity is not None else 0
        return [copy.deepcopy(a) for a in self._alerts
                if a["city"] == c["city"] and _SEVERITIES.index(a["severity"]) >= floor]
