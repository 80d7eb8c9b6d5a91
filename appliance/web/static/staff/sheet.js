// The printable recovery sheet (/notfallblatt): the print button.

const button = document.getElementById('print');
if (button) button.addEventListener('click', () => window.print());
