"""The toolbox's embedded, fixed facts: countries, cities, currencies and units.

Figures are rounded public values (populations ~2023, exchange rates of a fixed reference day)
frozen here so that every tool is a deterministic function of its arguments: the synthetic data
is byte-reproducible and a re-executed call gives the recorded output. They are plausible, not
authoritative.
"""

# The "today" of the toolbox: tools that would need the current date use this instead, so that
# no output depends on when it ran.
REFERENCE_DATE = "2025-01-15"

# country -> (capital, population, currency code)
COUNTRIES = {
    "Argentina": ("Buenos Aires", 46_650_000, "ARS"),
    "Australia": ("Canberra", 26_640_000, "AUD"),
    "Brazil": ("Brasilia", 216_420_000, "BRL"),
    "Canada": ("Ottawa", 40_100_000, "CAD"),
    "China": ("Beijing", 1_410_710_000, "CNY"),
    "Egypt": ("Cairo", 112_720_000, "EGP"),
    "France": ("Paris", 68_170_000, "EUR"),
    "Germany": ("Berlin", 84_480_000, "EUR"),
    "India": ("New Delhi", 1_428_630_000, "INR"),
    "Italy": ("Rome", 58_870_000, "EUR"),
    "Japan": ("Tokyo", 124_520_000, "JPY"),
    "Kenya": ("Nairobi", 55_100_000, "KES"),
    "Mexico": ("Mexico City", 128_460_000, "MXN"),
    "Norway": ("Oslo", 5_520_000, "NOK"),
    "Russia": ("Moscow", 143_830_000, "RUB"),
    "Singapore": ("Singapore", 5_920_000, "SGD"),
    "South Africa": ("Pretoria", 60_410_000, "ZAR"),
    "South Korea": ("Seoul", 51_710_000, "KRW"),
    "Spain": ("Madrid", 48_590_000, "EUR"),
    "Sweden": ("Stockholm", 10_540_000, "SEK"),
    "Switzerland": ("Bern", 8_850_000, "CHF"),
    "Turkey": ("Ankara", 85_330_000, "TRY"),
    "United Kingdom": ("London", 68_350_000, "GBP"),
    "United States": ("Washington", 334_910_000, "USD"),
}

# city -> (country, latitude, longitude, UTC offset in hours; standard time, no DST)
CITIES = {
    "Ankara": ("Turkey", 39.93, 32.86, 3.0),
    "Barcelona": ("Spain", 41.39, 2.17, 1.0),
    "Beijing": ("China", 39.90, 116.41, 8.0),
    "Berlin": ("Germany", 52.52, 13.40, 1.0),
    "Bern": ("Switzerland", 46.95, 7.45, 1.0),
    "Brasilia": ("Brazil", -15.79, -47.88, -3.0),
    "Buenos Aires": ("Argentina", -34.60, -58.38, -3.0),
    "Cairo": ("Egypt", 30.04, 31.24, 2.0),
    "Canberra": ("Australia", -35.28, 149.13, 10.0),
    "Cape Town": ("South Africa", -33.92, 18.42, 2.0),
    "Chicago": ("United States", 41.88, -87.63, -6.0),
    "Istanbul": ("Turkey", 41.01, 28.98, 3.0),
    "London": ("United Kingdom", 51.51, -0.13, 0.0),
    "Los Angeles": ("United States", 34.05, -118.24, -8.0),
    "Lyon": ("France", 45.76, 4.84, 1.0),
    "Madrid": ("Spain", 40.42, -3.70, 1.0),
    "Manchester": ("United Kingdom", 53.48, -2.24, 0.0),
    "Melbourne": ("Australia", -37.81, 144.96, 10.0),
    "Mexico City": ("Mexico", 19.43, -99.13, -6.0),
    "Milan": ("Italy", 45.46, 9.19, 1.0),
    "Moscow": ("Russia", 55.76, 37.62, 3.0),
    "Mumbai": ("India", 19.08, 72.88, 5.5),
    "Munich": ("Germany", 48.14, 11.58, 1.0),
    "Nairobi": ("Kenya", -1.29, 36.82, 3.0),
    "New Delhi": ("India", 28.61, 77.21, 5.5),
    "New York": ("United States", 40.71, -74.01, -5.0),
    "Osaka": ("Japan", 34.69, 135.50, 9.0),
    "Oslo": ("Norway", 59.91, 10.75, 1.0),
    "Ottawa": ("Canada", 45.42, -75.70, -5.0),
    "Paris": ("France", 48.86, 2.35, 1.0),
    "Pretoria": ("South Africa", -25.75, 28.19, 2.0),
    "Rome": ("Italy", 41.90, 12.50, 1.0),
    "Sao Paulo": ("Brazil", -23.55, -46.63, -3.0),
    "Seoul": ("South Korea", 37.57, 126.98, 9.0),
    "Shanghai": ("China", 31.23, 121.47, 8.0),
    "Singapore": ("Singapore", 1.35, 103.82, 8.0),
    "Stockholm": ("Sweden", 59.33, 18.07, 1.0),
    "Sydney": ("Australia", -33.87, 151.21, 10.0),
    "Tokyo": ("Japan", 35.68, 139.69, 9.0),
    "Toronto": ("Canada", 43.65, -79.38, -5.0),
    "Vancouver": ("Canada", 49.28, -123.12, -8.0),
    "Washington": ("United States", 38.91, -77.04, -5.0),
    "Zurich": ("Switzerland", 47.38, 8.54, 1.0),
}

# currency code -> units per 1 USD on the reference day
USD_RATES = {
    "USD": 1.0, "EUR": 0.92, "GBP": 0.79, "JPY": 151.2, "CNY": 7.24, "INR": 83.3, "CAD": 1.36,
    "AUD": 1.52, "BRL": 5.05, "MXN": 16.9, "CHF": 0.9, "SEK": 10.6, "NOK": 10.8, "KRW": 1350.0,
    "SGD": 1.35, "ZAR": 18.7, "EGP": 47.2, "KES": 131.0, "RUB": 92.5, "TRY": 32.2, "ARS": 870.0,
}

# unit -> (dimension, size in the dimension's base unit); temperatures are handled apart
UNITS = {
    "mm": ("length", 0.001), "cm": ("length", 0.01), "m": ("length", 1.0), "km": ("length", 1000.0),
    "in": ("length", 0.0254), "ft": ("length", 0.3048), "yd": ("length", 0.9144), "mi": ("length", 1609.344),
    "mg": ("mass", 0.001), "g": ("mass", 1.0), "kg": ("mass", 1000.0), "oz": ("mass", 28.349523125),
    "lb": ("mass", 453.59237),
    "ml": ("volume", 0.001), "l": ("volume", 1.0), "gal": ("volume", 3.785411784), "cup": ("volume", 0.2365882365),
}
TEMPERATURE_UNITS = ("c", "f", "k")

WEATHER_CONDITIONS = ("sunny", "partly cloudy", "cloudy", "light rain", "rain", "windy", "foggy", "snow")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
