"""Labels of the web console in English, Dutch and French.

``LABELS`` maps a label key to its texts by language; :func:`t` looks one up and falls back to English when a
translation is missing (and to the key itself for a key nobody wrote, so a page never breaks over a label).
The core's own messages (refusals, errors) are English and shown as they are.
"""
from __future__ import annotations

LANGS = ("en", "nl", "fr")
DEFAULT = "en"

LABELS: dict[str, dict[str, str]] = {
    # -- frame ---------------------------------------------------------------------------------------------
    "app.name": {"en": "Institutional Pages", "nl": "Instellingspagina's", "fr": "Pages institutionnelles"},
    "app.console": {"en": "Administration console", "nl": "Beheerconsole", "fr": "Console d'administration"},
    "nav.centres": {"en": "Centres", "nl": "Centra", "fr": "Centres"},
    "nav.logout": {"en": "Log out", "nl": "Afmelden", "fr": "Se déconnecter"},
    "nav.language": {"en": "Language", "nl": "Taal", "fr": "Langue"},
    "nav.logged_in_as": {"en": "Logged in as", "nl": "Aangemeld als", "fr": "Connecté en tant que"},
    "nav.back": {"en": "Back", "nl": "Terug", "fr": "Retour"},
    "nav.back_centre": {"en": "Back to the centre", "nl": "Terug naar het centrum", "fr": "Retour au centre"},
    "nav.back_list": {"en": "Back to the list of centres", "nl": "Terug naar de lijst van centra",
                      "fr": "Retour à la liste des centres"},
    "role.security-cell": {"en": "security cell", "nl": "veiligheidscel", "fr": "cellule de sécurité"},
    "role.local-admin": {"en": "local administrator", "nl": "lokale beheerder", "fr": "gestionnaire local"},
    "role.staff": {"en": "staff", "nl": "personeelslid", "fr": "membre du personnel"},
    "role.uploader": {"en": "uploader", "nl": "verzender", "fr": "expéditeur"},
    "role.archiver": {"en": "archive system", "nl": "archiefsysteem", "fr": "système d'archivage"},
    # -- login ---------------------------------------------------------------------------------------------
    "login.title": {"en": "Log in", "nl": "Aanmelden", "fr": "Connexion"},
    "login.username": {"en": "User name", "nl": "Gebruikersnaam", "fr": "Nom d'utilisateur"},
    "login.password": {"en": "Password", "nl": "Wachtwoord", "fr": "Mot de passe"},
    "login.code": {"en": "Code number {n} of your token card", "nl": "Code nummer {n} van uw token",
                   "fr": "Code numéro {n} de votre carte token"},
    "login.eid": {"en": "Your eID card is the second factor.", "nl": "Uw eID-kaart is de tweede factor.",
                  "fr": "Votre carte eID est le second facteur."},
    "login.next": {"en": "Next", "nl": "Volgende", "fr": "Suivant"},
    "login.submit": {"en": "Log in", "nl": "Aanmelden", "fr": "Se connecter"},
    "login.other_user": {"en": "Another user", "nl": "Andere gebruiker", "fr": "Autre utilisateur"},
    "login.failed": {"en": "Login failed.", "nl": "Aanmelden mislukt.", "fr": "Échec de la connexion."},
    "login.throttled": {"en": "Too many failed logins: please wait a moment and try again.",
                        "nl": "Te veel mislukte aanmeldingen: wacht even en probeer opnieuw.",
                        "fr": "Trop de connexions échouées : patientez un instant et réessayez."},
    "login.expired": {"en": "The form expired; please try again.", "nl": "Het formulier is verlopen; probeer opnieuw.",
                      "fr": "Le formulaire a expiré ; veuillez réessayer."},
    "login.session_ended": {"en": "Your session ended; please log in again.",
                            "nl": "Uw sessie is beëindigd; meld u opnieuw aan.",
                            "fr": "Votre session a pris fin ; veuillez vous reconnecter."},
    "login.unavailable": {"en": "Login is unavailable for the moment", "nl": "Aanmelden is even niet mogelijk",
                          "fr": "La connexion est momentanément indisponible"},
    # -- generic pages ---------------------------------------------------------------------------------------
    "error.title": {"en": "Refused", "nl": "Geweigerd", "fr": "Refusé"},
    "error.bad_request": {"en": "Bad request", "nl": "Ongeldig verzoek", "fr": "Requête invalide"},
    "error.forbidden": {"en": "Not allowed", "nl": "Niet toegestaan", "fr": "Non autorisé"},
    "error.conflict": {"en": "Not possible now", "nl": "Nu niet mogelijk", "fr": "Impossible pour l'instant"},
    "error.unavailable": {"en": "Temporarily unavailable", "nl": "Tijdelijk niet beschikbaar",
                          "fr": "Temporairement indisponible"},
    "error.csrf": {"en": "The form expired or did not come from this console; reload the page and try again.",
                   "nl": "Het formulier is verlopen of kwam niet van deze console; laad de pagina opnieuw.",
                   "fr": "Le formulaire a expiré ou ne vient pas de cette console ; rechargez la page."},
    "error.method": {"en": "This address only accepts its form.", "nl": "Dit adres aanvaardt enkel zijn formulier.",
                     "fr": "Cette adresse n'accepte que son formulaire."},
    "notfound.title": {"en": "Not found", "nl": "Niet gevonden", "fr": "Introuvable"},
    "notfound.text": {"en": "There is no such centre or page.", "nl": "Dit centrum of deze pagina bestaat niet.",
                      "fr": "Ce centre ou cette page n'existe pas."},
    "nothing.title": {"en": "Nothing to administer", "nl": "Niets te beheren", "fr": "Rien à administrer"},
    "nothing.text": {"en": "Your account does not administer any centre. Your centres' documents are on the "
                           "institutional page (/page/), the network drive (WebDAV) and SFTP.",
                     "nl": "Uw account beheert geen enkel centrum. De documenten van uw centra vindt u op de "
                           "institutionele pagina (/page/), op de netwerkschijf (WebDAV) en via SFTP.",
                     "fr": "Votre compte n'administre aucun centre. Les documents de vos centres se trouvent sur la "
                           "page institutionnelle (/page/), sur le lecteur réseau (WebDAV) et par SFTP."},
    # -- centres list ----------------------------------------------------------------------------------------
    "centres.title": {"en": "Centres", "nl": "Centra", "fr": "Centres"},
    "centres.filter": {"en": "Show", "nl": "Toon", "fr": "Afficher"},
    "centres.all": {"en": "all", "nl": "alle", "fr": "tous"},
    "centres.none": {"en": "No centre matches.", "nl": "Geen enkel centrum.", "fr": "Aucun centre."},
    "centres.count": {"en": "{n} centre(s)", "nl": "{n} centrum/centra", "fr": "{n} centre(s)"},
    "centre.id": {"en": "Enterprise number", "nl": "Ondernemingsnummer", "fr": "Numéro d'entreprise"},
    "centre.name": {"en": "Name", "nl": "Naam", "fr": "Nom"},
    "centre.status": {"en": "Switch-over status", "nl": "Overschakelingsstatus", "fr": "Statut du passage"},
    "centre.since": {"en": "Since", "nl": "Sinds", "fr": "Depuis"},
    "status.paper": {"en": "paper", "nl": "papier", "fr": "papier"},
    "status.requested": {"en": "requested", "nl": "aangevraagd", "fr": "demandé"},
    "status.active": {"en": "active", "nl": "actief", "fr": "actif"},
    "status.suspended": {"en": "suspended", "nl": "geschorst", "fr": "suspendu"},
    # -- centre page -----------------------------------------------------------------------------------------
    "centre.status_section": {"en": "Switch-over", "nl": "Overschakeling", "fr": "Passage à l'électronique"},
    "centre.changed_by": {"en": "Last change by", "nl": "Laatste wijziging door", "fr": "Dernière modification par"},
    "centre.reference": {"en": "Reference", "nl": "Referentie", "fr": "Référence"},
    "centre.record": {"en": "The centre's record", "nl": "Logboek van het centrum", "fr": "Journal du centre"},
    "transition.legend": {"en": "Change the status (all three legislations at once)",
                          "nl": "Status wijzigen (de drie wetgevingen samen)",
                          "fr": "Changer le statut (les trois législations ensemble)"},
    "transition.reference": {"en": "Reference", "nl": "Referentie", "fr": "Référence"},
    "transition.hint.request": {"en": "e.g. request letter of 2026-11-12", "nl": "bv. aanvraagbrief van 2026-11-12",
                                "fr": "p.ex. lettre de demande du 2026-11-12"},
    "transition.hint.activate": {"en": "e.g. signed forms received 2026-11-20",
                                 "nl": "bv. ondertekende formulieren ontvangen op 2026-11-20",
                                 "fr": "p.ex. formulaires signés reçus le 2026-11-20"},
    "transition.hint.suspend": {"en": "e.g. reason and decision number", "nl": "bv. reden en beslissingsnummer",
                                "fr": "p.ex. motif et numéro de décision"},
    "verb.request": {"en": "Record the centre's request", "nl": "Aanvraag van het centrum registreren",
                     "fr": "Enregistrer la demande du centre"},
    "verb.activate": {"en": "Activate", "nl": "Activeren", "fr": "Activer"},
    "verb.suspend": {"en": "Suspend", "nl": "Schorsen", "fr": "Suspendre"},
    "transition.none": {"en": "No status change is possible from here.", "nl": "Geen statuswijziging mogelijk.",
                        "fr": "Aucun changement de statut possible."},
    "history.title": {"en": "History", "nl": "Geschiedenis", "fr": "Historique"},
    "history.when": {"en": "When", "nl": "Wanneer", "fr": "Quand"},
    "history.from": {"en": "From", "nl": "Van", "fr": "De"},
    "history.to": {"en": "To", "nl": "Naar", "fr": "Vers"},
    "history.who": {"en": "Who", "nl": "Wie", "fr": "Qui"},
    "history.none": {"en": "No status change yet.", "nl": "Nog geen statuswijziging.",
                     "fr": "Aucun changement de statut."},
    # administrators
    "admins.title": {"en": "Local administrators", "nl": "Lokale beheerders", "fr": "Gestionnaires locaux"},
    "admins.none": {"en": "No local administrator designated.", "nl": "Geen lokale beheerder aangeduid.",
                    "fr": "Aucun gestionnaire local désigné."},
    "admins.designate": {"en": "Designate a local administrator", "nl": "Lokale beheerder aanduiden",
                         "fr": "Désigner un gestionnaire local"},
    "admins.undesignate": {"en": "Remove designation", "nl": "Aanduiding intrekken",
                           "fr": "Retirer la désignation"},
    "admins.account": {"en": "Account name", "nl": "Accountnaam", "fr": "Nom du compte"},
    "consultant.title": {"en": "Security consultant", "nl": "Veiligheidsconsulent",
                         "fr": "Conseiller en sécurité"},
    "consultant.none": {"en": "None designated.", "nl": "Niet aangeduid.", "fr": "Aucun désigné."},
    "consultant.acting": {"en": "acts as local administrator while none is designated",
                          "nl": "treedt op als lokale beheerder zolang er geen aangeduid is",
                          "fr": "agit comme gestionnaire local tant qu'aucun n'est désigné"},
    "consultant.set": {"en": "Designate the security consultant", "nl": "Veiligheidsconsulent aanduiden",
                       "fr": "Désigner le conseiller en sécurité"},
    "consultant.clear": {"en": "Remove the security consultant", "nl": "Veiligheidsconsulent verwijderen",
                         "fr": "Retirer le conseiller en sécurité"},
    "account.disabled": {"en": "disabled", "nl": "uitgeschakeld", "fr": "désactivé"},
    # contacts
    "contacts.title": {"en": "Notifications", "nl": "Meldingen", "fr": "Notifications"},
    "contacts.addresses": {"en": "Notification addresses (one per line, or separated by commas)",
                           "nl": "Adressen voor meldingen (één per regel, of gescheiden door komma's)",
                           "fr": "Adresses de notification (une par ligne, ou séparées par des virgules)"},
    "contacts.language": {"en": "Language of the mails", "nl": "Taal van de e-mails", "fr": "Langue des e-mails"},
    "contacts.none": {"en": "No notification address.", "nl": "Geen adres voor meldingen.",
                      "fr": "Aucune adresse de notification."},
    "contacts.save": {"en": "Save", "nl": "Opslaan", "fr": "Enregistrer"},
    "contacts.test": {"en": "Send a test mail", "nl": "Testbericht versturen", "fr": "Envoyer un message de test"},
    "lang.nl": {"en": "Dutch", "nl": "Nederlands", "fr": "néerlandais"},
    "lang.fr": {"en": "French", "nl": "Frans", "fr": "français"},
    # access
    "access.title": {"en": "Who has access to the mailbox", "nl": "Wie heeft toegang tot de mailbox",
                     "fr": "Qui a accès à la boîte aux lettres"},
    "access.account": {"en": "Account", "nl": "Account", "fr": "Compte"},
    "access.rights": {"en": "Rights", "nl": "Rechten", "fr": "Droits"},
    "access.since": {"en": "Since", "nl": "Sinds", "fr": "Depuis"},
    "access.by": {"en": "Granted by", "nl": "Toegekend door", "fr": "Accordé par"},
    "access.until": {"en": "Until", "nl": "Tot", "fr": "Jusqu'au"},
    "access.forever": {"en": "until revoked", "nl": "tot intrekking", "fr": "jusqu'à révocation"},
    "access.none": {"en": "Nobody has been granted access.", "nl": "Niemand heeft toegang gekregen.",
                    "fr": "Personne n'a reçu d'accès."},
    "access.read": {"en": "read", "nl": "lezen", "fr": "lecture"},
    "access.remove": {"en": "read + remove", "nl": "lezen + verwijderen", "fr": "lecture + suppression"},
    "access.write": {"en": "read + remove + write", "nl": "lezen + verwijderen + schrijven",
                     "fr": "lecture + suppression + écriture"},
    "access.grant": {"en": "Grant access", "nl": "Toegang geven", "fr": "Accorder l'accès"},
    "access.revoke": {"en": "Revoke", "nl": "Intrekken", "fr": "Révoquer"},
    "access.until_label": {"en": "End date (YYYY-MM-DD, optional: the access lasts through that day)",
                           "nl": "Einddatum (JJJJ-MM-DD, optioneel: de toegang geldt t.e.m. die dag)",
                           "fr": "Date de fin (AAAA-MM-JJ, facultative : l'accès vaut jusqu'à ce jour inclus)"},
    # archived documents
    "archived.title": {"en": "Archived documents", "nl": "Gearchiveerde documenten", "fr": "Documents archivés"},
    "archived.none": {"en": "No archived document.", "nl": "Geen gearchiveerd document.",
                      "fr": "Aucun document archivé."},
    "archived.path": {"en": "Document", "nl": "Document", "fr": "Document"},
    "archived.size": {"en": "Size", "nl": "Grootte", "fr": "Taille"},
    "archived.delivered": {"en": "Delivered", "nl": "Geleverd", "fr": "Livré"},
    "archived.at": {"en": "Archived", "nl": "Gearchiveerd", "fr": "Archivé"},
    "archived.by": {"en": "By", "nl": "Door", "fr": "Par"},
    "archived.restore": {"en": "Restore", "nl": "Terugzetten", "fr": "Restaurer"},
    # outbox
    "outbox.title": {"en": "Recent mails", "nl": "Recente e-mails", "fr": "E-mails récents"},
    "outbox.none": {"en": "No mail yet.", "nl": "Nog geen e-mail.", "fr": "Aucun e-mail."},
    "outbox.kind": {"en": "Kind", "nl": "Soort", "fr": "Type"},
    "outbox.created": {"en": "Queued", "nl": "In wachtrij", "fr": "Mis en file"},
    "outbox.to": {"en": "To", "nl": "Aan", "fr": "À"},
    "outbox.subject": {"en": "Subject", "nl": "Onderwerp", "fr": "Objet"},
    "outbox.state": {"en": "State", "nl": "Toestand", "fr": "État"},
    "outbox.sent": {"en": "sent", "nl": "verzonden", "fr": "envoyé"},
    "outbox.pending": {"en": "pending", "nl": "wachtend", "fr": "en attente"},
    "outbox.attempts": {"en": "attempts", "nl": "pogingen", "fr": "tentatives"},
    "outbox.last_error": {"en": "Last error", "nl": "Laatste fout", "fr": "Dernière erreur"},
    "kind.activation": {"en": "activation notice", "nl": "activeringsbericht", "fr": "avis d'activation"},
    "kind.digest": {"en": "new documents", "nl": "nieuwe documenten", "fr": "nouveaux documents"},
    "kind.test": {"en": "test mail", "nl": "testbericht", "fr": "message de test"},
    # record
    "record.title": {"en": "Record", "nl": "Logboek", "fr": "Journal"},
    "record.note": {"en": "The latest {n} events of this centre, newest first.",
                    "nl": "De laatste {n} gebeurtenissen van dit centrum, nieuwste eerst.",
                    "fr": "Les {n} derniers événements de ce centre, du plus récent au plus ancien."},
    "record.when": {"en": "When", "nl": "Wanneer", "fr": "Quand"},
    "record.actor": {"en": "Who", "nl": "Wie", "fr": "Qui"},
    "record.protocol": {"en": "Via", "nl": "Via", "fr": "Via"},
    "record.source": {"en": "From", "nl": "Vanaf", "fr": "Depuis"},
    "record.action": {"en": "Action", "nl": "Actie", "fr": "Action"},
    "record.outcome": {"en": "Outcome", "nl": "Resultaat", "fr": "Résultat"},
    "record.path": {"en": "Path", "nl": "Pad", "fr": "Chemin"},
    "record.detail": {"en": "Detail", "nl": "Detail", "fr": "Détail"},
    "record.none": {"en": "Nothing on the record yet.", "nl": "Nog niets in het logboek.",
                    "fr": "Rien dans le journal."},
    # confirmations after a change (shown after the redirect)
    "done.transition": {"en": "The status was changed.", "nl": "De status is gewijzigd.",
                        "fr": "Le statut a été modifié."},
    "done.activated": {"en": "The centre is active. Its contacts will receive the notice that electronic delivery "
                             "is ready.",
                       "nl": "Het centrum is actief. De contactpersonen krijgen het bericht dat de elektronische "
                             "levering klaar is.",
                       "fr": "Le centre est actif. Ses contacts recevront l'avis que la livraison électronique est "
                             "prête."},
    "done.activated_nomail": {"en": "The centre is active, but no notice was queued: the centre has no notification "
                                    "address, or mail is not configured on this gateway.",
                              "nl": "Het centrum is actief, maar er is geen bericht verstuurd: het centrum heeft geen "
                                    "adres voor meldingen, of e-mail is niet ingesteld.",
                              "fr": "Le centre est actif, mais aucun avis n'a été envoyé : le centre n'a pas "
                                    "d'adresse de notification, ou l'e-mail n'est pas configuré."},
    "done.designate": {"en": "The local administrator was designated.", "nl": "De lokale beheerder is aangeduid.",
                       "fr": "Le gestionnaire local a été désigné."},
    "done.undesignate": {"en": "The designation was removed.", "nl": "De aanduiding is ingetrokken.",
                         "fr": "La désignation a été retirée."},
    "done.consultant": {"en": "The security consultant was saved.", "nl": "De veiligheidsconsulent is opgeslagen.",
                        "fr": "Le conseiller en sécurité a été enregistré."},
    "done.contacts": {"en": "The notification settings were saved.", "nl": "De meldingsinstellingen zijn opgeslagen.",
                      "fr": "Les paramètres de notification ont été enregistrés."},
    "done.grant": {"en": "Access was granted.", "nl": "De toegang is gegeven.", "fr": "L'accès a été accordé."},
    "done.revoke": {"en": "Access was revoked.", "nl": "De toegang is ingetrokken.", "fr": "L'accès a été révoqué."},
    "done.restore": {"en": "The document was restored to the mailbox.",
                     "nl": "Het document is teruggezet in de mailbox.",
                     "fr": "Le document a été restauré dans la boîte aux lettres."},
    "done.notify-test": {"en": "The test mail is queued.", "nl": "Het testbericht staat in de wachtrij.",
                         "fr": "Le message de test est mis en file d'attente."},
    # -- unclassified documents (the security cell) ------------------------------------------------------------
    "unclassified.title": {"en": "Unclassified documents", "nl": "Niet-geklasseerde documenten",
                           "fr": "Documents non classés"},
    "unclassified.link": {"en": "Unclassified documents per centre", "nl": "Niet-geklasseerde documenten per centrum",
                          "fr": "Documents non classés par centre"},
    "unclassified.explain": {
        "en": "A document is filed by the path POD MI uploads it to, <legislation>/<kind>/<YYYY-MM>/name.pdf or "
              "<legislation>_<kind>_<period>.pdf (for example ris/monthly-statement/2026-10/statement.pdf or "
              "1965_maandstaat_202610.pdf), and one that matches no filing rule is still delivered but counted here "
              "as unclassified.",
        "nl": "Een document wordt geklasseerd volgens het pad waarnaar POD MI het oplaadt, "
              "<wetgeving>/<soort>/<JJJJ-MM>/naam.pdf of <wetgeving>_<soort>_<periode>.pdf (bijvoorbeeld "
              "ris/maandstaat/2026-10/staat.pdf of 1965_maandstaat_202610.pdf), en een document dat met geen enkele "
              "regel overeenkomt, wordt toch afgeleverd maar hier als niet geklasseerd geteld.",
        "fr": "Un document est classé selon le chemin où le SPP IS le dépose, <législation>/<type>/<AAAA-MM>/nom.pdf "
              "ou <législation>_<type>_<période>.pdf (par exemple ris/etat-mensuel/2026-10/etat.pdf ou "
              "1965_maandstaat_202610.pdf), et un document qui ne correspond à aucune règle est tout de même livré, "
              "mais compté ici comme non classé."},
    "unclassified.count": {"en": "Unclassified documents", "nl": "Niet-geklasseerde documenten",
                           "fr": "Documents non classés"},
    "unclassified.total": {"en": "In all: {n}", "nl": "In totaal: {n}", "fr": "Au total : {n}"},
    "unclassified.none": {"en": "Every document in the mailboxes is filed.",
                          "nl": "Alle documenten in de brievenbussen zijn geklasseerd.",
                          "fr": "Tous les documents des boîtes aux lettres sont classés."},
}

#: the institutional page (/page/): a centre's documents, their kinds and legislations, receipts
LABELS.update({
    "app.page": {"en": "Mailbox", "nl": "Mailbox", "fr": "Boîte aux lettres"},
    "page.mailboxes": {"en": "My mailboxes", "nl": "Mijn mailboxen", "fr": "Mes boîtes aux lettres"},
    "page.mailboxes_note": {"en": "The centres that granted you access to their mailbox.",
                            "nl": "De centra die u toegang gaven tot hun mailbox.",
                            "fr": "Les centres qui vous ont donné accès à leur boîte aux lettres."},
    "page.no_mailbox": {"en": "No centre has granted you access to its mailbox.",
                        "nl": "Geen enkel centrum gaf u toegang tot zijn mailbox.",
                        "fr": "Aucun centre ne vous a donné accès à sa boîte aux lettres."},
    "page.cell": {"en": "The security cell does not read mailboxes; it administers access in the console.",
                  "nl": "De veiligheidscel leest geen mailboxen; zij beheert de toegang in de beheerconsole.",
                  "fr": "La cellule de sécurité ne lit pas les boîtes aux lettres ; elle gère les accès dans la "
                        "console."},
    "page.to_console": {"en": "Go to the console", "nl": "Naar de beheerconsole", "fr": "Vers la console"},
    "page.back": {"en": "Back to the mailbox", "nl": "Terug naar de mailbox", "fr": "Retour à la boîte aux lettres"},
    "page.notfound": {"en": "There is no such centre or document.", "nl": "Dit centrum of document bestaat niet.",
                      "fr": "Ce centre ou ce document n'existe pas."},
    "page.count": {"en": "{n} document(s)", "nl": "{n} document(en)", "fr": "{n} document(s)"},
    "page.none": {"en": "No document matches.", "nl": "Geen enkel document gevonden.",
                  "fr": "Aucun document ne correspond."},
    "page.last_visit": {"en": "Your previous visit: {when}.", "nl": "Uw vorige bezoek: {when}.",
                        "fr": "Votre visite précédente : {when}."},
    "page.first_visit": {"en": "This is your first visit.", "nl": "Dit is uw eerste bezoek.",
                         "fr": "C'est votre première visite."},
    "page.newer": {"en": "Newer documents", "nl": "Nieuwere documenten", "fr": "Documents plus récents"},
    "page.older": {"en": "Older documents", "nl": "Oudere documenten", "fr": "Documents plus anciens"},
    "filter.title": {"en": "Find documents", "nl": "Documenten zoeken", "fr": "Rechercher des documents"},
    "filter.kind": {"en": "Kind", "nl": "Soort", "fr": "Type"},
    "filter.legislation": {"en": "Legislation", "nl": "Wetgeving", "fr": "Législation"},
    "filter.period": {"en": "Period (YYYY or YYYY-MM)", "nl": "Periode (JJJJ of JJJJ-MM)",
                      "fr": "Période (AAAA ou AAAA-MM)"},
    "filter.new": {"en": "New since my last visit", "nl": "Nieuw sinds mijn vorige bezoek",
                   "fr": "Nouveaux depuis ma dernière visite"},
    "filter.any": {"en": "all", "nl": "alle", "fr": "tous"},
    "filter.apply": {"en": "Show", "nl": "Tonen", "fr": "Afficher"},
    "filter.clear": {"en": "Show all", "nl": "Alles tonen", "fr": "Tout afficher"},
    "doc.select": {"en": "Select", "nl": "Selecteren", "fr": "Sélectionner"},
    "doc.name": {"en": "Document", "nl": "Document", "fr": "Document"},
    "doc.kind": {"en": "Kind", "nl": "Soort", "fr": "Type"},
    "doc.legislation": {"en": "Legislation", "nl": "Wetgeving", "fr": "Législation"},
    "doc.period": {"en": "Period", "nl": "Periode", "fr": "Période"},
    "doc.size": {"en": "Size", "nl": "Grootte", "fr": "Taille"},
    "doc.delivered": {"en": "Delivered", "nl": "Geleverd", "fr": "Livré"},
    "doc.sender": {"en": "Sender", "nl": "Afzender", "fr": "Expéditeur"},
    "doc.fetched": {"en": "First fetched", "nl": "Eerst opgehaald", "fr": "Premier retrait"},
    "doc.not_fetched": {"en": "not fetched yet", "nl": "nog niet opgehaald", "fr": "pas encore retiré"},
    "doc.fetched_by": {"en": "{when} by {who} via {how}", "nl": "{when} door {who} via {how}",
                       "fr": "{when} par {who} via {how}"},
    "doc.archived": {"en": "Archived", "nl": "Gearchiveerd", "fr": "Archivé"},
    "doc.archived_by": {"en": "{when} by {who}", "nl": "{when} door {who}", "fr": "{when} par {who}"},
    "doc.in_mailbox": {"en": "in the mailbox", "nl": "in de mailbox", "fr": "dans la boîte aux lettres"},
    "doc.path": {"en": "Place in the mailbox", "nl": "Plaats in de mailbox", "fr": "Emplacement dans la boîte"},
    "doc.download": {"en": "Download", "nl": "Downloaden", "fr": "Télécharger"},
    "doc.receipt": {"en": "Receipt", "nl": "Ontvangstbewijs", "fr": "Accusé de réception"},
    "doc.archive": {"en": "Archive", "nl": "Archiveren", "fr": "Archiver"},
    "doc.archive_note": {"en": "Archiving removes the document from the mailbox; it is kept and your local "
                                "administrator can restore it.",
                         "nl": "Archiveren haalt het document uit de mailbox; het wordt bewaard en uw lokale "
                               "beheerder kan het terugzetten.",
                         "fr": "Archiver retire le document de la boîte aux lettres ; il est conservé et votre "
                               "gestionnaire local peut le restaurer."},
    "done.archived": {"en": "The document was archived.", "nl": "Het document is gearchiveerd.",
                      "fr": "Le document a été archivé."},
    "zip.title": {"en": "Download several documents as one ZIP", "nl": "Meerdere documenten als één ZIP downloaden",
                  "fr": "Télécharger plusieurs documents en un seul ZIP"},
    "zip.selected": {"en": "Download the selected documents (ZIP)", "nl": "Geselecteerde documenten downloaden (ZIP)",
                     "fr": "Télécharger les documents sélectionnés (ZIP)"},
    "zip.period": {"en": "Download every document of period {period} shown by the filter (ZIP)",
                   "nl": "Alle documenten van periode {period} volgens de filter downloaden (ZIP)",
                   "fr": "Télécharger tous les documents de la période {period} selon le filtre (ZIP)"},
    "zip.hint": {"en": "Tick documents in the list, or choose a period in the filter above. At most {n} documents "
                       "and {size} per ZIP.",
                 "nl": "Vink documenten aan in de lijst, of kies een periode in de filter hierboven. Hoogstens {n} "
                       "documenten en {size} per ZIP.",
                 "fr": "Cochez des documents dans la liste, ou choisissez une période dans le filtre ci-dessus. Au "
                       "plus {n} documents et {size} par ZIP."},
    "zip.too_many": {"en": "A ZIP holds at most {n} documents; this request asks for {asked}. Choose fewer "
                           "documents or a shorter period. Nothing was downloaded.",
                     "nl": "Een ZIP bevat hoogstens {n} documenten; deze aanvraag vraagt er {asked}. Kies minder "
                           "documenten of een kortere periode. Er werd niets gedownload.",
                     "fr": "Un ZIP contient au plus {n} documents ; cette demande en compte {asked}. Choisissez "
                           "moins de documents ou une période plus courte. Rien n'a été téléchargé."},
    "zip.too_large": {"en": "A ZIP holds at most {size}; these documents make {asked}. Choose fewer documents. "
                            "Nothing was downloaded.",
                      "nl": "Een ZIP bevat hoogstens {size}; deze documenten zijn samen {asked}. Kies minder "
                            "documenten. Er werd niets gedownload.",
                      "fr": "Un ZIP contient au plus {size} ; ces documents font {asked}. Choisissez moins de "
                            "documents. Rien n'a été téléchargé."},
    "zip.nothing": {"en": "Select documents in the list, or give a period, to download a ZIP.",
                    "nl": "Selecteer documenten in de lijst, of geef een periode op, om een ZIP te downloaden.",
                    "fr": "Sélectionnez des documents dans la liste, ou indiquez une période, pour télécharger un "
                          "ZIP."},
    "error.filter": {"en": "Unknown filter value", "nl": "Onbekende filterwaarde", "fr": "Valeur de filtre inconnue"},
    "error.too_large": {"en": "Too many documents", "nl": "Te veel documenten", "fr": "Trop de documents"},
    "protocol.web": {"en": "web page", "nl": "webpagina", "fr": "page web"},
    "protocol.webdav": {"en": "network drive (WebDAV)", "nl": "netwerkschijf (WebDAV)",
                        "fr": "lecteur réseau (WebDAV)"},
    "protocol.sftp": {"en": "SFTP", "nl": "SFTP", "fr": "SFTP"},
    "protocol.api": {"en": "REST API", "nl": "REST API", "fr": "API REST"},
    # the kinds of document and the legislations (gateway.core.filing)
    "dockind.monthly-statement": {"en": "Monthly statement", "nl": "Maandstaat", "fr": "État mensuel"},
    "dockind.accepted-forms": {"en": "Accepted or partially accepted forms",
                               "nl": "Aanvaarde of gedeeltelijk aanvaarde formulieren",
                               "fr": "Formulaires acceptés ou partiellement acceptés"},
    "dockind.refused-forms": {"en": "Refused forms", "nl": "Geweigerde formulieren", "fr": "Formulaires refusés"},
    "dockind.legality-letter": {"en": "Letter on illegality or legality", "nl": "Brief over illegaliteit of legaliteit",
                                "fr": "Lettre d'illégalité ou de légalité"},
    "dockind.annual-settlement": {"en": "Annual settlement", "nl": "Jaarlijkse afrekening", "fr": "Décompte annuel"},
    "dockind.settlement-annex": {"en": "Annex to the annual settlement", "nl": "Bijlage bij de jaarlijkse afrekening",
                                 "fr": "Annexe au décompte annuel"},
    "dockind.unclassified": {"en": "Unclassified", "nl": "Niet ingedeeld", "fr": "Non classé"},
    "legislation.ris": {"en": "Right to social integration", "nl": "Recht op maatschappelijke integratie",
                        "fr": "Droit à l'intégration sociale"},
    "legislation.law1965": {"en": "Reimbursements, law of 2 April 1965", "nl": "Terugbetalingen, wet van 2 april 1965",
                            "fr": "Remboursements, loi du 2 avril 1965"},
    "legislation.maintenance": {"en": "Advances on maintenance payments", "nl": "Voorschotten op onderhoudsgelden",
                                "fr": "Avances sur pensions alimentaires"},
})

#: Accept-Language tags we answer, by primary subtag
_PRIMARY = {"en": "en", "nl": "nl", "fr": "fr"}


def t(key: str, lang: str, **values) -> str:
    """The label ``key`` in ``lang``; English when that translation is missing; the key itself when unknown.
    ``values`` fill ``{placeholders}``."""
    texts = LABELS.get(key)
    if texts is None:
        text = key
    else:
        text = texts.get(lang) or texts.get(DEFAULT) or key
    return text.format(**values) if values else text


def supported(lang: str | None) -> str | None:
    """``lang`` if the console speaks it, else None."""
    lang = (lang or "").strip().lower()
    return lang if lang in LANGS else None


def negotiate(accept_language: str | None) -> str | None:
    """The best of our languages for an ``Accept-Language`` header (q-values honoured), or None."""
    best: tuple[float, int, str] | None = None
    for i, part in enumerate((accept_language or "").split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k.strip() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        lang = _PRIMARY.get(tag.split("-")[0])
        if lang is None or q <= 0:
            continue
        if best is None or q > best[0] or (q == best[0] and i < best[1]):
            best = (q, i, lang)
    return best[2] if best else None
