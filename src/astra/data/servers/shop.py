"""Shop: a small online store with a product catalogue, a shopping cart and orders.

Seed data: 20 products in five categories (electronics, kitchen, outdoor, books, home)
with identifiers ``P-1001`` .. ``P-1020``, prices in USD and stock counts (two products
are out of stock); three coupon codes (``SPRING10`` 10% off, ``SAVE20`` $20 off orders of
$100 or more, ``BOOKWORM15`` 15% off books); and two earlier orders, ``O-5001`` (shipped)
and ``O-5002`` (processing). "Today" is 2026-03-02. Each ``ShopServer`` instance starts
from its own copy of this data, with an empty cart.
"""

import copy
from typing import Literal, TypedDict

from astra.data.servers._tables import keyed, lookup
from astra.errors import ToolCallError

TODAY = "2026-03-02"

Category = Literal["electronics", "kitchen", "outdoor", "books", "home"]

_PRODUCTS: list[dict] = [
    {"product_id": "P-1001", "name": "Aurora Wireless Earbuds", "category": "electronics", "brand": "Sonique",
     "price": 79.99, "stock": 42, "rating": 4.4,
     "description": "Bluetooth 5.3 earbuds with active noise cancelling and 28 hours of battery with the case."},
    {"product_id": "P-1002", "name": "Volt 20W USB-C Charger", "category": "electronics", "brand": "Voltix",
     "price": 19.99, "stock": 150, "rating": 4.6,
     "description": "Compact USB-C power delivery wall charger for phones and tablets."},
    {"product_id": "P-1003", "name": "Lumen 27-inch 4K Monitor", "category": "electronics", "brand": "Lumen",
     "price": 329.00, "stock": 7, "rating": 4.5,
     "description": "27-inch IPS 4K monitor with USB-C input and height-adjustable stand."},
    {"product_id": "P-1004", "name": "TypeFlow Mechanical Keyboard", "category": "electronics", "brand": "Keyworks",
     "price": 89.50, "stock": 0, "rating": 4.7,
     "description": "Tenkeyless mechanical keyboard with hot-swappable brown switches."},
    {"product_id": "P-1005", "name": "Glide Wireless Mouse", "category": "electronics", "brand": "Keyworks",
     "price": 29.99, "stock": 64, "rating": 4.2,
     "description": "Ergonomic wireless mouse with silent clicks and a rechargeable battery."},
    {"product_id": "P-1006", "name": "Barista Pro Espresso Machine", "category": "kitchen", "brand": "Caffora",
     "price": 249.00, "stock": 5, "rating": 4.3,
     "description": "15-bar pump espresso machine with steam wand and 1.8 L water tank."},
    {"product_id": "P-1007", "name": "Chef's Knife 8-inch", "category": "kitchen", "brand": "Hanzo",
     "price": 59.00, "stock": 33, "rating": 4.8,
     "description": "Forged stainless steel 8-inch chef's knife with a full tang handle."},
    {"product_id": "P-1008", "name": "Cast Iron Skillet 12-inch", "category": "kitchen", "brand": "Ironhearth",
     "price": 39.95, "stock": 21, "rating": 4.7,
     "description": "Pre-seasoned 12-inch cast iron skillet, oven safe to 260 C."},
    {"product_id": "P-1009", "name": "Pour-Over Coffee Kettle", "category": "kitchen", "brand": "Caffora",
     "price": 44.00, "stock": 18, "rating": 4.5,
     "description": "1 L gooseneck electric kettle with temperature presets for coffee and tea."},
    {"product_id": "P-1010", "name": "Glass Meal Prep Containers (10-pack)", "category": "kitchen",
     "brand": "Freshly", "price": 32.49, "stock": 0, "rating": 4.1,
     "description": "Ten oven-safe borosilicate glass containers with snap-lock lids."},
    {"product_id": "P-1011", "name": "Trailblazer 2-Person Tent", "category": "outdoor", "brand": "Summit",
     "price": 189.00, "stock": 9, "rating": 4.6,
     "description": "Freestanding 3-season backpacking tent weighing 1.9 kg."},
    {"product_id": "P-1012", "name": "Insulated Water Bottle 750 ml", "category": "outdoor", "brand": "Hydra",
     "price": 24.99, "stock": 120, "rating": 4.8,
     "description": "Double-wall stainless steel bottle that keeps drinks cold for 24 hours."},
    {"product_id": "P-1013", "name": "Down Sleeping Bag -5 C", "category": "outdoor", "brand": "Summit",
     "price": 229.00, "stock": 4, "rating": 4.4,
     "description": "Mummy sleeping bag with 650-fill down, rated to -5 C."},
    {"product_id": "P-1014", "name": "Trekking Poles (pair)", "category": "outdoor", "brand": "Ridgeline",
     "price": 69.00, "stock": 27, "rating": 4.3,
     "description": "Collapsible carbon-fibre trekking poles with cork grips."},
    {"product_id": "P-1015", "name": "The Quiet Algorithm (hardcover)", "category": "books", "brand": "Northwind Press",
     "price": 27.00, "stock": 55, "rating": 4.5,
     "description": "A novel about an engineer who discovers her recommendation system has opinions."},
    {"product_id": "P-1016", "name": "Practical Sourdough", "category": "books", "brand": "Crumb & Co",
     "price": 22.50, "stock": 38, "rating": 4.9,
     "description": "A step-by-step baking guide with 60 sourdough recipes."},
    {"product_id": "P-1017", "name": "Mountains of the West: A Field Guide", "category": "books",
     "brand": "Ridgeline Books", "price": 31.00, "stock": 12, "rating": 4.6,
     "description": "Trail maps and natural history for 40 peaks in the western United States."},
    {"product_id": "P-1018", "name": "Linen Duvet Cover (Queen)", "category": "home", "brand": "Nestwell",
     "price": 129.00, "stock": 14, "rating": 4.4,
     "description": "Stonewashed French linen duvet cover in oat colour, queen size."},
    {"product_id": "P-1019", "name": "Smart LED Desk Lamp", "category": "home", "brand": "Lumen",
     "price": 49.99, "stock": 40, "rating": 4.2,
     "description": "Dimmable desk lamp with colour temperature control and a USB charging port."},
    {"product_id": "P-1020", "name": "Aroma Diffuser", "category": "home", "brand": "Nestwell",
     "price": 34.00, "stock": 26, "rating": 4.0,
     "description": "Ultrasonic essential-oil diffuser with 300 ml tank and auto shut-off."},
]

_COUPONS: dict[str, dict] = {
    "SPRING10": {"kind": "percent", "value": 10.0, "min_subtotal": 0.0, "category": None,
                 "description": "10% off the whole cart"},
    "SAVE20": {"kind": "fixed", "value": 20.0, "min_subtotal": 100.0, "category": None,
               "description": "$20 off carts of $100 or more"},
    "BOOKWORM15": {"kind": "percent", "value": 15.0, "min_subtotal": 0.0, "category": "books",
                   "description": "15% off books"},
}

_ORDERS: list[dict] = [
    {"order_id": "O-5001", "status": "shipped", "placed_on": "2026-02-24", "estimated_delivery": "2026-03-03",
     "items": [{"product_id": "P-1012", "name": "Insulated Water Bottle 750 ml", "unit_price": 24.99,
                "quantity": 2, "line_total": 49.98}],
     "subtotal": 49.98, "discount": 0.0, "coupon_code": None, "shipping_method": "standard",
     "shipping_cost": 5.99, "total": 55.97, "shipping_address": "14 Alder Lane, Portland, OR 97205",
     "tracking_number": "1Z-884-302-117", "cancellation_reason": None},
    {"order_id": "O-5002", "status": "processing", "placed_on": "2026-03-01", "estimated_delivery": "2026-03-06",
     "items": [{"product_id": "P-1016", "name": "Practical Sourdough", "unit_price": 22.5, "quantity": 1,
                "line_total": 22.5},
               {"product_id": "P-1008", "name": "Cast Iron Skillet 12-inch", "unit_price": 39.95, "quantity": 1,
                "line_total": 39.95}],
     "subtotal": 62.45, "discount": 0.0, "coupon_code": None, "shipping_method": "standard",
     "shipping_cost": 0.0, "total": 62.45, "shipping_address": "14 Alder Lane, Portland, OR 97205",
     "tracking_number": None, "cancellation_reason": None},
]

_SHIPPING = {
    "standard": {"free_over": 50.0, "cost": 5.99, "delivery": "2026-03-07"},
    "express": {"free_over": None, "cost": 14.99, "delivery": "2026-03-04"},
}


class ProductSummary(TypedDict):
    product_id: str
    name: str
    category: str
    brand: str
    price: float
    currency: str
    in_stock: bool
    rating: float


class Product(TypedDict):
    product_id: str
    name: str
    category: str
    brand: str
    description: str
    price: float
    currency: str
    stock: int
    in_stock: bool
    rating: float


class StockStatus(TypedDict):
    product_id: str
    name: str
    available_quantity: int
    requested_quantity: int
    can_fulfill: bool
    in_cart: int


class LineItem(TypedDict):
    product_id: str
    name: str
    unit_price: float
    quantity: int
    line_total: float


class Cart(TypedDict):
    items: list[LineItem]
    item_count: int
    subtotal: float
    coupon_code: str | None
    discount: float
    total: float
    currency: str


class Order(TypedDict):
    order_id: str
    status: str
    placed_on: str
    estimated_delivery: str | None
    items: list[LineItem]
    subtotal: float
    discount: float
    coupon_code: str | None
    shipping_method: str
    shipping_cost: float
    total: float
    currency: str
    shipping_address: str
    tracking_number: str | None
    cancellation_reason: str | None


class OrderSummary(TypedDict):
    order_id: str
    status: str
    placed_on: str
    item_count: int
    total: float
    currency: str


def _money(x: float) -> float:
    return round(float(x) + 1e-9, 2)


class ShopServer:
    """An online store selling electronics, kitchen, outdoor, book and home products in USD.
    Search the catalogue, check stock, manage a shopping cart with coupon codes, place orders
    and look up or cancel them."""

    name = "shop"
    title = "Shop"
    domain = "e-commerce"

    def __init__(self) -> None:
        self._products: dict[str, dict] = keyed(_PRODUCTS, "product_id")
        self._orders: dict[str, dict] = keyed(_ORDERS, "order_id")
        self._cart: dict[str, int] = {}
        self._coupon: str | None = None
        self._next_order = 5003

    # ------------------------------------------------------------------ helpers

    def _product(self, product_id: str) -> dict:
        return lookup(self._products, product_id,
                      f"Unknown product_id {product_id!r}. Product ids look like 'P-1001' "
                      f"(valid range P-1001..P-1020); use search_products to find one.")

    def _order(self, order_id: str) -> dict:
        return lookup(self._orders, order_id,
                      f"Unknown order_id {order_id!r}. Known orders: {', '.join(sorted(self._orders))}.")

    @staticmethod
    def _quantity(quantity: int) -> int:
        if isinstance(quantity, bool) or not isinstance(quantity, int | float) or int(quantity) != quantity:
            raise ToolCallError(f"quantity must be a whole number, got {quantity!r}.")
        if quantity < 1 or quantity > 20:
            raise ToolCallError(f"quantity must be between 1 and 20, got {quantity}.")
        return int(quantity)

    def _lines(self) -> list[dict]:
        lines = []
        for pid, qty in self._cart.items():
            p = self._products[pid]
            lines.append({"product_id": pid, "name": p["name"], "unit_price": p["price"], "quantity": qty,
                          "line_total": _money(p["price"] * qty)})
        return lines

    def _discount(self, lines: list[dict], code: str | None) -> float:
        if code is None:
            return 0.0
        c = _COUPONS[code]
        if c["category"] is not None:
            base = sum(ln["line_total"] for ln in lines if self._products[ln["product_id"]]["category"] == c["category"])
        else:
            base = sum(ln["line_total"] for ln in lines)
        subtotal = sum(ln["line_total"] for ln in lines)
        if subtotal < c["min_subtotal"]:
            return 0.0
        if c["kind"] == "percent":
            return _money(base * c["value"] / 100.0)
        return _money(min(c["value"], base))

    def _cart_view(self) -> Cart:
        lines = self._lines()
        subtotal = _money(sum(ln["line_total"] for ln in lines))
        discount = self._discount(lines, self._coupon)
        return {"items": lines, "item_count": sum(ln["quantity"] for ln in lines), "subtotal": subtotal,
                "coupon_code": self._coupon, "discount": discount, "total": _money(subtotal - discount),
                "currency": "USD"}

    @staticmethod
    def _order_view(o: dict) -> Order:
        out = copy.deepcopy(o)
        out["currency"] = "USD"
        return out  # type: ignore[return-value]

    # ------------------------------------------------------------------ tools

    def search_products(self, query: str = "", category: Category | None = None, max_price: float | None = None,
                        in_stock_only: bool = False, limit: int = 10) -> list[ProductSummary]:
        """Search the product catalogue by keywords, category and price.

        Matches every word of the query against product names, brands and descriptions
        and returns summaries (product_id, name, price, in_stock) sorted by rating, best first.

        Args:
            query: Keywords to match, e.g. 'wireless earbuds' or 'cast iron'; empty matches every product.
            category: Restrict results to one catalogue category.
            max_price: Highest unit price in USD to include, e.g. 50.0.
            in_stock_only: If true, leave out products whose stock is zero.
            limit: Maximum number of results to return (1-20).

        Returns:
            A list of product summaries; empty when nothing matches.
        """
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 20:
            raise ToolCallError(f"limit must be an integer between 1 and 20, got {limit!r}.")
        if category is not None and category not in ("electronics", "kitchen", "outdoor", "books", "home"):
            raise ToolCallError(
                f"Unknown category {category!r}. Valid categories: electronics, kitchen, outdoor, books, home."
            )
        if max_price is not None and max_price <= 0:
            raise ToolCallError(f"max_price must be positive, got {max_price!r}.")
        words = [w for w in str(query or "").lower().split() if w]
        hits = []
        for p in self._products.values():
            text = f"{p['name']} {p['brand']} {p['description']} {p['category']}".lower()
            if any(w not in text for w in words):
                continue
            if category is not None and p["category"] != category:
                continue
            if max_price is not None and p["price"] > max_price:
                continue
            if in_stock_only and p["stock"] <= 0:
                continue
            hits.append(p)
        hits.sort(key=lambda p: (-p["rating"], p["product_id"]))
        return [{"product_id": p["product_id"], "name": p["name"], "category": p["category"], "brand": p["brand"],
                 "price": p["price"], "currency": "USD", "in_stock": p["stock"] > 0, "rating": p["rating"]}
                for p in hits[:limit]]

    def get_product(self, product_id: str) -> Product:
        """Get the full details of one product.

        Returns the product's description, brand, category, USD price, rating and the
        number of units currently in stock.

        Args:
            product_id: Product identifier such as 'P-1004', as returned by search_products.

        Returns:
            The product record.
        """
        p = self._product(product_id)
        return {"product_id": p["product_id"], "name": p["name"], "category": p["category"], "brand": p["brand"],
                "description": p["description"], "price": p["price"], "currency": "USD", "stock": p["stock"],
                "in_stock": p["stock"] > 0, "rating": p["rating"]}

    def check_stock(self, product_id: str, quantity: int = 1) -> StockStatus:
        """Check whether a product can be ordered in a given quantity.

        Returns the units available, how many are already in the cart and whether the
        requested quantity can be fulfilled on top of them.

        Args:
            product_id: Product identifier such as 'P-1011', as returned by search_products.
            quantity: Number of units the customer wants to buy (1-20).

        Returns:
            The stock status for the product.
        """
        p = self._product(product_id)
        qty = self._quantity(quantity)
        in_cart = self._cart.get(p["product_id"], 0)
        return {"product_id": p["product_id"], "name": p["name"], "available_quantity": p["stock"],
                "requested_quantity": qty, "can_fulfill": p["stock"] >= in_cart + qty, "in_cart": in_cart}

    def add_to_cart(self, product_id: str, quantity: int = 1) -> Cart:
        """Add units of a product to the shopping cart.

        Fails if the product is out of stock or the cart would hold more units than are
        in stock. Returns the updated cart with line totals, discount and total.

        Args:
            product_id: Product identifier such as 'P-1007', as returned by search_products.
            quantity: Number of units to add (1-20).

        Returns:
            The cart after the addition.
        """
        p = self._product(product_id)
        qty = self._quantity(quantity)
        pid = p["product_id"]
        if p["stock"] <= 0:
            raise ToolCallError(f"Product {pid} ({p['name']}) is out of stock and cannot be added to the cart.")
        new_qty = self._cart.get(pid, 0) + qty
        if new_qty > p["stock"]:
            raise ToolCallError(
                f"Only {p['stock']} unit(s) of {pid} ({p['name']}) are in stock; the cart would hold {new_qty}."
            )
        self._cart[pid] = new_qty
        return self._cart_view()

    def view_cart(self) -> Cart:
        """Show the current shopping cart.

        Returns every line item with unit price and line total, the applied coupon code,
        the discount and the total in USD (before shipping).

        Returns:
            The current cart (possibly empty).
        """
        return self._cart_view()

    def remove_from_cart(self, product_id: str, quantity: int | None = None) -> Cart:
        """Remove a product, or some of its units, from the shopping cart.

        Returns the updated cart. Fails if the product is not in the cart.

        Args:
            product_id: Identifier of a product currently in the cart, e.g. 'P-1002' (see view_cart).
            quantity: Number of units to remove; omit to remove the product line entirely.

        Returns:
            The cart after the removal.
        """
        p = self._product(product_id)
        pid = p["product_id"]
        if pid not in self._cart:
            in_cart = ", ".join(self._cart) or "nothing"
            raise ToolCallError(f"Product {pid} is not in the cart (the cart holds: {in_cart}).")
        if quantity is None or self._quantity(quantity) >= self._cart[pid]:
            del self._cart[pid]
        else:
            self._cart[pid] -= int(quantity)
        if not self._cart:
            self._coupon = None
        return self._cart_view()

    def apply_coupon(self, coupon_code: str) -> Cart:
        """Apply a coupon code to the shopping cart, replacing any earlier coupon.

        Fails for unknown codes, an empty cart, or a cart that does not meet the coupon's
        minimum. Returns the cart with the discount applied.

        Args:
            coupon_code: Promotional code printed on a voucher or newsletter, e.g. 'SPRING10'.

        Returns:
            The cart with the coupon applied.
        """
        code = str(coupon_code).strip().upper()
        if code not in _COUPONS:
            raise ToolCallError(f"Coupon code {coupon_code!r} is not valid or has expired.")
        if not self._cart:
            raise ToolCallError("The cart is empty; add products before applying a coupon.")
        lines = self._lines()
        subtotal = sum(ln["line_total"] for ln in lines)
        c = _COUPONS[code]
        if subtotal < c["min_subtotal"]:
            raise ToolCallError(
                f"Coupon {code} ({c['description']}) needs a subtotal of at least ${c['min_subtotal']:.2f}; "
                f"the cart subtotal is ${subtotal:.2f}."
            )
        if self._discount(lines, code) <= 0:
            raise ToolCallError(f"Coupon {code} ({c['description']}) does not apply to any item in the cart.")
        self._coupon = code
        return self._cart_view()

    def checkout(self, shipping_address: str, shipping_method: Literal["standard", "express"] = "standard") -> Order:
        """Place an order for everything in the shopping cart.

        Reserves the stock, empties the cart and returns the new order with its order_id,
        totals including shipping (standard shipping is free over $50) and estimated delivery date.

        Args:
            shipping_address: Full postal address to ship to, e.g. '14 Alder Lane, Portland, OR 97205'.
            shipping_method: 'standard' (5 days, $5.99, free over $50) or 'express' (2 days, $14.99).

        Returns:
            The placed order.
        """
        if not self._cart:
            raise ToolCallError("The cart is empty; add products with add_to_cart before checking out.")
        if shipping_method not in _SHIPPING:
            raise ToolCallError(f"Unknown shipping_method {shipping_method!r}; use 'standard' or 'express'.")
        address = str(shipping_address or "").strip()
        if len(address) < 10:
            raise ToolCallError(f"shipping_address {shipping_address!r} is too short; give a full postal address.")
        for pid, qty in self._cart.items():
            if self._products[pid]["stock"] < qty:
                raise ToolCallError(f"Only {self._products[pid]['stock']} unit(s) of {pid} remain; reduce the quantity.")
        cart = self._cart_view()
        ship = _SHIPPING[shipping_method]
        cost = 0.0 if ship["free_over"] is not None and cart["subtotal"] >= ship["free_over"] else ship["cost"]
        order_id = f"O-{self._next_order}"
        self._next_order += 1
        for pid, qty in self._cart.items():
            self._products[pid]["stock"] -= qty
        order = {"order_id": order_id, "status": "processing", "placed_on": TODAY,
                 "estimated_delivery": ship["delivery"], "items": cart["items"], "subtotal": cart["subtotal"],
                 "discount": cart["discount"], "coupon_code": cart["coupon_code"],
                 "shipping_method": shipping_method, "shipping_cost": cost,
                 "total": _money(cart["total"] + cost), "shipping_address": address, "tracking_number": None,
                 "cancellation_reason": None}
        self._orders[order_id] = order
        self._cart = {}
        self._coupon = None
        return self._order_view(order)

    def get_order(self, order_id: str) -> Order:
        """Look up an order by its identifier.

        Returns the order's status (processing, shipped, delivered or cancelled), items,
        totals, shipping details and tracking number when shipped.

        Args:
            order_id: Order identifier such as 'O-5001', as returned by checkout or list_orders.

        Returns:
            The order record.
        """
        return self._order_view(self._order(order_id))

    def list_orders(self, status: Literal["processing", "shipped", "delivered", "cancelled"] | None = None
                    ) -> list[OrderSummary]:
        """List the customer's orders, newest first.

        Returns a short summary per order (order_id, status, date, item count, total).

        Args:
            status: Only list orders in this status; omit to list all orders.

        Returns:
            A list of order summaries.
        """
        if status is not None and status not in ("processing", "shipped", "delivered", "cancelled"):
            raise ToolCallError(
                f"Unknown status {status!r}; use processing, shipped, delivered or cancelled."
            )
        out = []
        for o in sorted(self._orders.values(), key=lambda o: o["order_id"], reverse=True):
            if status is None or o["status"] == status:
                out.append({"order_id": o["order_id"], "status": o["status"], "placed_on": o["placed_on"],
                            "item_count": sum(i["quantity"] for i in o["items"]), "total": o["total"],
                            "currency": "USD"})
        return out

    def cancel_order(self, order_id: str, reason: str | None = None) -> Order:
        """Cancel an order that has not shipped yet and return its stock to inventory.

        Only orders in 'processing' status can be cancelled. Returns the cancelled order.

        Args:
            order_id: Identifier of the order to cancel, e.g. 'O-5002', as returned by checkout or list_orders.
            reason: Why the customer is cancelling, e.g. 'ordered the wrong size'.

        Returns:
            The order with status 'cancelled'.
        """
        o = self._order(order_id)
        if o["status"] != "processing":
            raise ToolCallError(
                f"Order {o['order_id']} is {o['status']} and cannot be cancelled; only orders still "
                f"processing can be cancelled."
            )
        for item in o["items"]:
            if item["product_id"] in self._products:
                self._products[item["product_id"]]["stock"] += item["quantity"]
        o["status"] = "cancelled"
        o["estimated_delivery"] = None
        o["cancellation_reason"] = (reason or "").strip() or "cancelled by customer"
        return self._order_view(o)
