"""What people read off screens and paper: PDFs, words for codes, text made safe for the
formats it goes into. Reads the domain and HQ's read models; writes nothing."""
