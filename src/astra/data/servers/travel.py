"""Travel: flight search and booking plus hotel search and booking.

Seed data: 10 airports (8 in the United States, London Heathrow and Paris Charles de
Gaulle) identified by IATA code; 20 scheduled flights ``FL-101`` .. ``FL-120`` between
2026-03-10 and 2026-03-20 with economy and business fares and seat counts; 10 hotels
``H-201`` .. ``H-210`` in six cities with nightly rates; and one earlier, already
cancelled booking ``BK-7000``. "Today" is 2026-03-02. Each ``TravelServer`` instance
starts from its own copy of this data.
"""

import copy
import datetime as _dt
from typing import Literal, TypedDict

from astra.data.servers._tables import keyed, lookup, one_of
from astra.errors import ToolCallError

TODAY = "2026-03-02"
FLIGHT_CANCEL_FEE = 75.0  # per passenger

Cabin = Literal["economy", "business"]

_AIRPORTS: list[dict] = [
    {"airport_code": "JFK", "name": "John F. Kennedy International", "city": "New York", "country": "US"},
    {"airport_code": "BOS", "name": "Logan International", "city": "Boston", "country": "US"},
    {"airport_code": "ORD", "name": "O'Hare International", "city": "Chicago", "country": "US"},
    {"airport_code": "DEN", "name": "Denver International", "city": "Denver", "country": "US"},
    {"airport_code": "SEA", "name": "Seattle-Tacoma International", "city": "Seattle", "country": "US"},
    {"airport_code": "SFO", "name": "San Francisco International", "city": "San Francisco", "country": "US"},
    {"airport_code": "LAX", "name": "Los Angeles International", "city": "Los Angeles", "country": "US"},
    {"airport_code": "MIA", "name": "Miami International", "city": "Miami", "country": "US"},
    {"airport_code": "LHR", "name": "Heathrow", "city": "London", "country": "GB"},
    {"airport_code": "CDG", "name": "Charles de Gaulle", "city": "Paris", "country": "FR"},
]


def _f(fid, airline, number, origin, dest, date, dep, arr, minutes, stops, eco, bus, seats_e, seats_b):
    return {"flight_id": fid, "airline": airline, "flight_number": number, "origin": origin,
            "destination": dest, "date": date, "departure_time": dep, "arrival_time": arr,
            "duration_minutes": minutes, "stops": stops, "fares": {"economy": eco, "business": bus},
            "seats": {"economy": seats_e, "business": seats_b}}


_FLIGHTS: list[dict] = [
    _f("FL-101", "Skyline Air", "SK 210", "JFK", "LAX", "2026-03-10", "07:00", "10:25", 385, 0, 289.0, 899.0, 34, 6),
    _f("FL-102", "Pacifica", "PC 88", "JFK", "LAX", "2026-03-10", "13:15", "18:40", 445, 1, 219.0, 749.0, 12, 0),
    _f("FL-103", "Skyline Air", "SK 212", "JFK", "LAX", "2026-03-11", "07:00", "10:25", 385, 0, 259.0, 879.0, 40, 8),
    _f("FL-104", "Skyline Air", "SK 215", "LAX", "JFK", "2026-03-15", "22:30", "06:55", 325, 0, 309.0, 929.0, 21, 4),
    _f("FL-105", "Atlantic Blue", "AB 1", "JFK", "LHR", "2026-03-12", "19:00", "07:05", 425, 0, 612.0, 2450.0, 18, 5),
    _f("FL-106", "Atlantic Blue", "AB 2", "LHR", "JFK", "2026-03-19", "11:30", "14:40", 490, 0, 588.0, 2390.0, 25, 3),
    _f("FL-107", "Pacifica", "PC 301", "SFO", "SEA", "2026-03-10", "09:10", "11:20", 130, 0, 119.0, 389.0, 50, 10),
    _f("FL-108", "Pacifica", "PC 305", "SEA", "SFO", "2026-03-13", "17:45", "19:55", 130, 0, 129.0, 399.0, 2, 0),
    _f("FL-109", "Midland", "ML 440", "ORD", "DEN", "2026-03-14", "08:20", "09:55", 155, 0, 149.0, 459.0, 30, 8),
    _f("FL-110", "Midland", "ML 441", "DEN", "ORD", "2026-03-17", "15:05", "18:30", 145, 0, 139.0, 449.0, 27, 8),
    _f("FL-111", "Skyline Air", "SK 530", "BOS", "MIA", "2026-03-12", "06:45", "10:05", 200, 0, 179.0, 599.0, 16, 4),
    _f("FL-112", "Skyline Air", "SK 531", "MIA", "BOS", "2026-03-16", "18:10", "21:25", 195, 0, 189.0, 609.0, 0, 2),
    _f("FL-113", "Atlantic Blue", "AB 33", "BOS", "CDG", "2026-03-18", "18:30", "07:45", 435, 0, 655.0, 2680.0, 9, 4),
    _f("FL-114", "Atlantic Blue", "AB 34", "CDG", "BOS", "2026-03-20", "10:15", "12:40", 505, 0, 630.0, 2610.0, 14, 6),
    _f("FL-115", "Pacifica", "PC 12", "SFO", "JFK", "2026-03-11", "06:00", "14:35", 335, 0, 279.0, 939.0, 22, 6),
    _f("FL-116", "Midland", "ML 720", "SEA", "DEN", "2026-03-14", "12:00", "15:25", 145, 0, 159.0, 479.0, 19, 4),
    _f("FL-117", "Midland", "ML 725", "DEN", "LAX", "2026-03-15", "10:40", "12:05", 145, 0, 129.0, 419.0, 33, 8),
    _f("FL-118", "Skyline Air", "SK 90", "ORD", "LHR", "2026-03-13", "20:15", "10:20", 485, 0, 574.0, 2290.0, 11, 2),
    _f("FL-119", "Atlantic Blue", "AB 61", "LHR", "CDG", "2026-03-16", "09:00", "11:20", 80, 0, 98.0, 310.0, 60, 12),
    _f("FL-120", "Pacifica", "PC 77", "LAX", "SFO", "2026-03-10", "16:30", "17:55", 85, 0, 99.0, 289.0, 45, 8),
]

_HOTELS: list[dict] = [
    {"hotel_id": "H-201", "name": "Hudson Park Hotel", "city": "New York", "stars": 4, "nightly_rate": 289.0,
     "rooms_available": 6, "neighborhood": "Chelsea", "amenities": ["wifi", "gym", "restaurant"]},
    {"hotel_id": "H-202", "name": "The Bowery Bunk", "city": "New York", "stars": 2, "nightly_rate": 119.0,
     "rooms_available": 12, "neighborhood": "Lower East Side", "amenities": ["wifi", "shared kitchen"]},
    {"hotel_id": "H-203", "name": "Sunset Palms Inn", "city": "Los Angeles", "stars": 3, "nightly_rate": 169.0,
     "rooms_available": 8, "neighborhood": "Santa Monica", "amenities": ["wifi", "pool", "parking"]},
    {"hotel_id": "H-204", "name": "Grand Meridian Los Angeles", "city": "Los Angeles", "stars": 5,
     "nightly_rate": 455.0, "rooms_available": 3, "neighborhood": "Downtown",
     "amenities": ["wifi", "pool", "spa", "gym", "restaurant"]},
    {"hotel_id": "H-205", "name": "Thames Quay Hotel", "city": "London", "stars": 4, "nightly_rate": 241.0,
     "rooms_available": 5, "neighborhood": "Southwark", "amenities": ["wifi", "gym", "bar"]},
    {"hotel_id": "H-206", "name": "Kensington Rooms", "city": "London", "stars": 3, "nightly_rate": 158.0,
     "rooms_available": 0, "neighborhood": "Kensington", "amenities": ["wifi", "breakfast"]},
    {"hotel_id": "H-207", "name": "Hotel Lumiere Marais", "city": "Paris", "stars": 4, "nightly_rate": 262.0,
     "rooms_available": 4, "neighborhood": "Le Marais", "amenities": ["wifi", "breakfast", "bar"]},
    {"hotel_id": "H-208", "name": "Pike Street Lodge", "city": "Seattle", "stars": 3, "nightly_rate": 149.0,
     "rooms_available": 9, "neighborhood": "Downtown", "amenities": ["wifi", "parking"]},
    {"hotel_id": "H-209", "name": "Bayside Suites", "city": "Miami", "stars": 4, "nightly_rate": 219.0,
     "rooms_available": 7, "neighborhood": "Brickell", "amenities": ["wifi", "pool", "gym"]},
    {"hotel_id": "H-210", "name": "Mile High Hotel", "city": "Denver", "stars": 3, "nightly_rate": 139.0,
     "rooms_available": 10, "neighborhood": "LoDo", "amenities": ["wifi", "gym", "parking"]},
]

_BOOKINGS: list[dict] = [
    {"booking_id": "BK-7000", "booking_type": "flight", "status": "cancelled", "traveler_name": "Jordan Ellis",
     "created_on": "2026-02-10", "flight_id": "FL-107", "hotel_id": None, "cabin": "economy", "passengers": 1,
     "check_in": None, "check_out": None, "nights": None, "rooms": None, "total_price": 119.0,
     "currency": "USD", "refund_amount": 44.0, "summary": "Pacifica PC 301 SFO -> SEA on 2026-03-10"},
]


class Airport(TypedDict):
    airport_code: str
    name: str
    city: str
    country: str


class FlightSummary(TypedDict):
    flight_id: str
    airline: str
    flight_number: str
    origin: str
    destination: str
    date: str
    departure_time: str
    arrival_time: str
    stops: int
    cabin: str
    price_per_passenger: float
    total_price: float
    currency: str
    seats_available: int


class Flight(TypedDict):
    flight_id: str
    airline: str
    flight_number: str
    origin: str
    origin_city: str
    destination: str
    destination_city: str
    date: str
    departure_time: str
    arrival_time: str
    duration_minutes: int
    stops: int
    economy_fare: float
    business_fare: float
    economy_seats_available: int
    business_seats_available: int
    currency: str


class HotelSummary(TypedDict):
    hotel_id: str
    name: str
    city: str
    neighborhood: str
    stars: int
    nightly_rate: float
    nights: int
    total_price: float
    currency: str
    rooms_available: int
    amenities: list[str]


class Booking(TypedDict):
    booking_id: str
    booking_type: str
    status: str
    traveler_name: str
    created_on: str
    summary: str
    flight_id: str | None
    hotel_id: str | None
    cabin: str | None
    passengers: int | None
    check_in: str | None
    check_out: str | None
    nights: int | None
    rooms: int | None
    total_price: float
    currency: str
    refund_amount: float | None


def _date(value: str, field: str) -> _dt.date:
    try:
        d = _dt.date.fromisoformat(str(value))
    except ValueError:
        raise ToolCallError(f"{field} {value!r} is not a date in YYYY-MM-DD format, e.g. '2026-03-12'.") from None
    if d < _dt.date.fromisoformat(TODAY):
        raise ToolCallError(f"{field} {value} is in the past; today is {TODAY}.")
    return d


def _count(value: int, field: str, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value or not 1 <= value <= hi:
        raise ToolCallError(f"{field} must be a whole number between 1 and {hi}, got {value!r}.")
    return int(value)


def _name(value: str) -> str:
    name = str(value or "").strip()
    if len(name.split()) < 2:
        raise ToolCallError(f"traveler_name {value!r} must be the traveler's full name (first and last name).")
    return name


class TravelServer:
    """A travel agency for flights between 10 airports in the US and Europe and for hotels in six
    cities. Search and book flights by cabin, search and book hotels by dates, and look up or
    cancel bookings (flight cancellations cost $75 per passenger)."""

    name = "travel"
    title = "Travel"
    domain = "travel"

    def __init__(self) -> None:
        self._airports = keyed(_AIRPORTS, "airport_code")
        self._flights = keyed(_FLIGHTS, "flight_id")
        self._hotels = keyed(_HOTELS, "hotel_id")
        self._bookings = keyed(_BOOKINGS, "booking_id")
        self._next_booking = 7001

    # ------------------------------------------------------------------ helpers

    def _airport(self, code: str, field: str) -> dict:
        return lookup(self._airports, code,
                      f"Unknown {field} airport code {code!r}. Valid codes: {', '.join(self._airports)} (see list_airports).")

    def _flight(self, flight_id: str) -> dict:
        return lookup(self._flights, flight_id,
                      f"Unknown flight_id {flight_id!r}. Flight ids look like 'FL-101' (FL-101..FL-120); "
                      f"use search_flights to find one.")

    def _hotel(self, hotel_id: str) -> dict:
        return lookup(self._hotels, hotel_id,
                      f"Unknown hotel_id {hotel_id!r}. Hotel ids look like 'H-201' (H-201..H-210); "
                      f"use search_hotels to find one.")

    @staticmethod
    def _cabin(cabin: str) -> str:
        return one_of("cabin", cabin, ("economy", "business"))

    def _new_booking_id(self) -> str:
        bid = f"BK-{self._next_booking}"
        self._next_booking += 1
        return bid

    # ------------------------------------------------------------------ tools

    def list_airports(self, country: str | None = None) -> list[Airport]:
        """List the airports served, optionally for one country.

        Returns each airport's IATA code (used as origin/destination in search_flights),
        name, city and country.

        Args:
            country: Two-letter ISO country code to filter by, e.g. 'US', 'GB' or 'FR'; omit for all airports.

        Returns:
            A list of airports.
        """
        if country is not None:
            country = str(country).strip().upper()
            countries = sorted({a["country"] for a in self._airports.values()})
            if country not in countries:
                raise ToolCallError(f"No airports in country {country!r}. Countries served: {', '.join(countries)}.")
        return [copy.deepcopy(a) for a in self._airports.values() if country is None or a["country"] == country]

    def search_flights(self, origin: str, destination: str, date: str, cabin: Cabin = "economy",
                       passengers: int = 1) -> list[FlightSummary]:
        """Search scheduled flights between two airports on a date.

        Returns the flights with enough seats in the cabin for all passengers, cheapest
        first, with per-passenger and total fares in USD.

        Args:
            origin: IATA code of the departure airport, e.g. 'JFK', as returned by list_airports.
            destination: IATA code of the arrival airport, e.g. 'LAX', as returned by list_airports.
            date: Departure date in YYYY-MM-DD format, e.g. '2026-03-10'.
            cabin: Cabin class to price and check seats for.
            passengers: Number of travelers flying together (1-9).

        Returns:
            A list of matching flights; empty when none has enough seats.
        """
        o = self._airport(origin, "origin")
        d = self._airport(destination, "destination")
        if o is d:
            raise ToolCallError("origin and destination must be different airports.")
        day = _date(date, "date").isoformat()
        cabin = self._cabin(cabin)
        n = _count(passengers, "passengers", 9)
        out = []
        for f in self._flights.values():
            if (f["origin"], f["destination"], f["date"]) != (o["airport_code"], d["airport_code"], day):
                continue
            if f["seats"][cabin] < n:
                continue
            fare = f["fares"][cabin]
            out.append({"flight_id": f["flight_id"], "airline": f["airline"], "flight_number": f["flight_number"],
                        "origin": f["origin"], "destination": f["destination"], "date": f["date"],
                        "departure_time": f["departure_time"], "arrival_time": f["arrival_time"],
                        "stops": f["stops"], "cabin": cabin, "price_per_passenger": fare,
                        "total_price": round(fare * n, 2), "currency": "USD", "seats_available": f["seats"][cabin]})
        out.sort(key=lambda x: (x["price_per_passenger"], x["departure_time"]))
        return out

    def get_flight(self, flight_id: str) -> Flight:
        """Get the full details of one flight.

        Returns the schedule (local times), duration, origin and destination cities, fares
        and seats left for both cabins.

        Args:
            flight_id: Flight identifier such as 'FL-105', as returned by search_flights.

        Returns:
            The flight record.
        """
        f = self._flight(flight_id)
        return {"flight_id": f["flight_id"], "airline": f["airline"], "flight_number": f["flight_number"],
                "origin": f["origin"], "origin_city": self._airports[f["origin"]]["city"],
                "destination": f["destination"], "destination_city": self._airports[f["destination"]]["city"],
                "date": f["date"], "departure_time": f["departure_time"], "arrival_time": f["arrival_time"],
                "duration_minutes": f["duration_minutes"], "stops": f["stops"],
                "economy_fare": f["fares"]["economy"], "business_fare": f["fares"]["business"],
                "economy_seats_available": f["seats"]["economy"],
                "business_seats_available": f["seats"]["business"], "currency": "USD"}

    def book_flight(self, flight_id: str, traveler_name: str, cabin: Cabin = "economy",
                    passengers: int = 1) -> Booking:
        """Book seats on a flight.

        Reserves the seats and returns a confirmed booking with its booking_id and total
        price in USD. Fails when the cabin has too few seats left.

        Args:
            flight_id: Flight identifier such as 'FL-103', as returned by search_flights.
            traveler_name: Full name of the lead traveler as on their passport, e.g. 'Maya Chen'.
            cabin: Cabin class to book.
            passengers: Number of seats to book, including the lead traveler (1-9).

        Returns:
            The new booking.
        """
        f = self._flight(flight_id)
        name = _name(traveler_name)
        cabin = self._cabin(cabin)
        n = _count(passengers, "passengers", 9)
        if f["seats"][cabin] < n:
            raise ToolCallError(
                f"Flight {f['flight_id']} has only {f['seats'][cabin]} {cabin} seat(s) left; {n} requested."
            )
        f["seats"][cabin] -= n
        booking = {"booking_id": self._new_booking_id(), "booking_type": "flight", "status": "confirmed",
                   "traveler_name": name, "created_on": TODAY, "flight_id": f["flight_id"], "hotel_id": None,
                   "cabin": cabin, "passengers": n, "check_in": None, "check_out": None, "nights": None,
                   "rooms": None, "total_price": round(f["fares"][cabin] * n, 2), "currency": "USD",
                   "refund_amount": None,
                   "summary": f"{f['airline']} {f['flight_number']} {f['origin']} -> {f['destination']} on {f['date']}"}
        self._bookings[booking["booking_id"]] = booking
        return copy.deepcopy(booking)

    def get_booking(self, booking_id: str) -> Booking:
        """Look up a flight or hotel booking.

        Returns the booking's status (confirmed or cancelled), traveler, what was booked,
        total price and any refund.

        Args:
            booking_id: Booking identifier such as 'BK-7001', as returned by book_flight or book_hotel.

        Returns:
            The booking record.
        """
        b = self._bookings.get(str(booking_id).strip().upper())
        if b is None:
            raise ToolCallError(
                f"Unknown booking_id {booking_id!r}. Known bookings: {', '.join(sorted(self._bookings))}."
            )
        return copy.deepcopy(b)

    def cancel_booking(self, booking_id: str) -> Booking:
        """Cancel a confirmed flight or hotel booking and release its seats or rooms.

        Hotel bookings are refunded in full; flight bookings are refunded minus a $75 fee
        per passenger. Returns the cancelled booking with its refund amount.

        Args:
            booking_id: Identifier of the booking to cancel, e.g. 'BK-7001', as returned by book_flight or book_hotel.

        Returns:
            The booking with status 'cancelled'.
        """
        self.get_booking(booking_id)
        b = self._bookings[str(booking_id).strip().upper()]
        if b["status"] == "cancelled":
            raise ToolCallError(f"Booking {b['booking_id']} is already cancelled.")
        if b["booking_type"] == "flight":
            self._flights[b["flight_id"]]["seats"][b["cabin"]] += b["passengers"]
            refund = max(0.0, b["total_price"] - FLIGHT_CANCEL_FEE * b["passengers"])
        else:
            self._hotels[b["hotel_id"]]["rooms_available"] += b["rooms"]
            refund = b["total_price"]
        b["status"] = "cancelled"
        b["refund_amount"] = round(refund, 2)
        return copy.deepcopy(b)

    def search_hotels(self, city: str, check_in: str, check_out: str, min_stars: int | None = None,
                      max_nightly_rate: float | None = None) -> list[HotelSummary]:
        """Search hotels with free rooms in a city for a stay.

        Returns the hotels with at least one room available, cheapest first, with the
        nightly rate and total price for the stay in USD.

        Args:
            city: City name, e.g. 'London' or 'New York' (a flight's destination_city from get_flight works).
            check_in: Arrival date in YYYY-MM-DD format, e.g. '2026-03-12'.
            check_out: Departure date in YYYY-MM-DD format, after check_in.
            min_stars: Lowest star rating to include (1-5).
            max_nightly_rate: Highest nightly rate in USD to include, e.g. 200.0.

        Returns:
            A list of hotels; empty when none matches.
        """
        cities = sorted({h["city"] for h in self._hotels.values()})
        match = [c for c in cities if c.lower() == str(city).strip().lower()]
        if not match:
            raise ToolCallError(f"No hotels in city {city!r}. Cities with hotels: {', '.join(cities)}.")
        nights = self._nights(check_in, check_out)
        if min_stars is not None and not 1 <= min_stars <= 5:
            raise ToolCallError(f"min_stars must be between 1 and 5, got {min_stars!r}.")
        out = []
        for h in self._hotels.values():
            if h["city"] != match[0] or h["rooms_available"] < 1:
                continue
            if min_stars is not None and h["stars"] < min_stars:
                continue
            if max_nightly_rate is not None and h["nightly_rate"] > max_nightly_rate:
                continue
            out.append({"hotel_id": h["hotel_id"], "name": h["name"], "city": h["city"],
                        "neighborhood": h["neighborhood"], "stars": h["stars"], "nightly_rate": h["nightly_rate"],
                        "nights": nights, "total_price": round(h["nightly_rate"] * nights, 2), "currency": "USD",
                        "rooms_available": h["rooms_available"], "amenities": list(h["amenities"])})
        out.sort(key=lambda x: (x["nightly_rate"], x["hotel_id"]))
        return out

    @staticmethod
    def _nights(check_in: str, check_out: str) -> int:
        a = _date(check_in, "check_in")
        b = _date(check_out, "check_out")
        nights = (b - a).days
        if nights < 1:
            raise ToolCallError(f"check_out {check_out} must be at least one day after check_in {check_in}.")
        if nights > 30:
            raise ToolCallError(f"Stays are limited to 30 nights; {nights} requested.")
        return nights

    def book_hotel(self, hotel_id: str, traveler_name: str, check_in: str, check_out: str,
                   rooms: int = 1) -> Booking:
        """Book rooms at a hotel for a stay.

        Reserves the rooms and returns a confirmed booking with its booking_id and the total
        price for all nights and rooms in USD.

        Args:
            hotel_id: Hotel identifier such as 'H-205', as returned by search_hotels.
            traveler_name: Full name of the guest the rooms are booked under, e.g. 'Maya Chen'.
            check_in: Arrival date in YYYY-MM-DD format, e.g. '2026-03-12'.
            check_out: Departure date in YYYY-MM-DD format, after check_in.
            rooms: Number of rooms to book (1-5).

        Returns:
            The new booking.
        """
        h = self._hotel(hotel_id)
        name = _name(traveler_name)
        nights = self._nights(check_in, check_out)
        n = _count(rooms, "rooms", 5)
        if h["rooms_available"] < n:
            raise ToolCallError(
                f"Hotel {h['hotel_id']} ({h['name']}) has only {h['rooms_available']} room(s) available; {n} requested."
            )
        h["rooms_available"] -= n
        booking = {"booking_id": self._new_booking_id(), "booking_type": "hotel", "status": "confirmed",
                   "traveler_name": name, "created_on": TODAY, "flight_id": None, "hotel_id": h["hotel_id"],
                   "cabin": None, "passengers": None, "check_in": str(check_in), "check_out": str(check_out),
                   "nights": nights, "rooms": n, "total_price": round(h["nightly_rate"] * nights * n, 2),
                   "currency": "USD", "refund_amount": None,
                   "summary": f"{h['name']}, {h['city']}: {nights} night(s) from {check_in}, {n} room(s)"}
        self._bookings[booking["booking_id"]] = booking
        return copy.deepcopy(booking)
