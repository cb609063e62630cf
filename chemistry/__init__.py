"""Pure cheminformatics for Sentinel-NPS: strings and arrays in, frozen dataclasses out."""
